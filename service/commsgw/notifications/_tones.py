"""DTMF tones of a call reach subscribers in sequenceId order, although Graph may deliver the
notifications out of order.

Within one POST, the tone updates of each call are sorted by sequenceId (stable; every other
notification keeps its place). Across POSTs, :class:`ToneMarks` records per call the highest
tone sequenceId that has gone through the event log: it follows the hub's dispatch
(``Hub.observe_calls``, hooked by :class:`ToneOrder`, as managed keepAlive follows it); with a
shared Redis log every replica's hub sees every entry, so this works whichever replica got the
earlier tone. Before a POST is appended, :meth:`ToneOrder.hold` waits, for each call whose
lowest tone in the POST is above the next one due (highest seen + 1), until the hub has seen
the tones before it or the reorder window has passed. A tone that comes after a later one was
released is still stored (nothing is lost); it is logged.

Only the lowest tone of a call in a POST is waited for: a POST holding tones 1 and 3 goes on
at once, and a tone 2 arriving later is delivered after 3.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Sequence

from commsgw.eventlog import Hub, LogEntry
from commsgw.notifications._parse import ParsedNotification
from graphcomms.v1 import calls_pb2

__all__ = ["TONE_CALLS", "ToneMarks", "ToneOrder", "in_sequence"]

log = logging.getLogger("commsgw.webhook")

CallKey = tuple[str, str]  # (tenant, call id)
TONE_CALLS = 100_000


class ToneMarks:
    """Per (tenant, call), the highest tone sequence id dispatched, and an event per call set
    when it changes. Bounded: past `max_calls` the least recently toned call is forgotten; a
    terminated call at once. `observe` is a hub call observer (`Hub.observe_calls`)."""

    def __init__(self, max_calls: int = TONE_CALLS) -> None:
        self._max = max_calls
        self._highest: collections.OrderedDict[CallKey, int] = collections.OrderedDict()
        self._changed: dict[CallKey, asyncio.Event] = {}

    def highest(self, key: CallKey) -> int:
        """The highest tone sequence id of the call dispatched so far; 0 when none."""
        return self._highest.get(key, 0)

    def changed(self, key: CallKey) -> asyncio.Event:
        """An event set the next time `highest(key)` changes."""
        ev = self._changed.get(key)
        if ev is None:
            if len(self._changed) >= self._max:  # waiters that gave up: wake the oldest
                self._changed.pop(next(iter(self._changed))).set()
            ev = self._changed[key] = asyncio.Event()
        return ev

    def observe(self, e: LogEntry) -> None:
        """One call update dispatched by the hub (in log order)."""
        cu = e.event.call_update
        key = (e.tenant_id, e.call_id)
        if cu.state == calls_pb2.CALL_STATE_TERMINATED:
            self._highest.pop(key, None)
        elif (seq := cu.tone_info.sequence_id) > 0:
            highest = self._highest.get(key, 0)
            if seq <= highest:
                log.info(
                    "tone %d of call %s delivered after tone %d: it came too late to be put "
                    "in order",
                    seq,
                    e.call_id,
                    highest,
                )
                return
            self._highest[key] = seq
            self._highest.move_to_end(key)
            if len(self._highest) > self._max:
                self._highest.popitem(last=False)
        else:
            return
        ev = self._changed.pop(key, None)
        if ev is not None:
            ev.set()


def _tone(item: ParsedNotification) -> tuple[CallKey, int] | None:
    """(call, sequenceId) of a tone update with a sequence id; None for anything else."""
    ev = item.event
    if ev.WhichOneof("kind") != "call_update":
        return None
    seq = ev.call_update.tone_info.sequence_id
    return ((ev.tenant_id, ev.call_id), seq) if seq > 0 else None


def _sequence_id(item: ParsedNotification) -> int:
    return item.event.call_update.tone_info.sequence_id


def in_sequence(items: Sequence[ParsedNotification]) -> list[ParsedNotification]:
    """`items` with the tone updates of each call in sequenceId order (stable); the others keep
    their place, and so do the slots the tones of a call occupy."""
    slots: dict[CallKey, list[int]] = {}
    for i, item in enumerate(items):
        tone = _tone(item)
        if tone is not None:
            slots.setdefault(tone[0], []).append(i)
    out = list(items)
    for positions in slots.values():
        if len(positions) > 1:
            ordered = sorted((items[i] for i in positions), key=_sequence_id)
            for i, item in zip(positions, ordered, strict=True):
                out[i] = item
    return out


class ToneOrder:
    """Holds a POST whose tones come too early (see the module docstring); its marks follow
    `hub`'s dispatch from now on (build it before the webhook takes a POST)."""

    def __init__(self, hub: Hub, window_s: float, *, max_calls: int = TONE_CALLS) -> None:
        self.marks = ToneMarks(max_calls)
        hub.observe_calls(self.marks.observe)
        self.window_s = window_s
        self.holding = 0  # POSTs waiting now

    async def hold(self, items: Sequence[ParsedNotification]) -> None:
        lowest: dict[CallKey, int] = {}
        for item in items:
            tone = _tone(item)
            if tone is not None:
                key, seq = tone
                lowest[key] = min(seq, lowest.get(key, seq))
        marks = self.marks
        due = [(key, seq) for key, seq in lowest.items() if marks.highest(key) < seq - 1]
        if not due:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window_s
        self.holding += 1
        try:
            for key, seq in due:
                while marks.highest(key) < seq - 1:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        log.info(
                            "tone %d of call %s stored without tones %d..%d: not received "
                            "within the reorder window (%.2f s)",
                            seq,
                            key[1],
                            marks.highest(key) + 1,
                            seq - 1,
                            self.window_s,
                        )
                        break
                    changed = marks.changed(key)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await changed.wait()
        finally:
            self.holding -= 1
