"""DTMF tones of a call reach subscribers in sequenceId order, although Graph may deliver the
notifications out of order.

Within one POST, the tone updates of each call are sorted by sequenceId (stable; every other
notification keeps its place). Across POSTs, the hub records per call the highest tone
sequenceId it has seen go through the event log (``eventlog._hub.ToneMarks``; with a shared
Redis log every replica's hub sees every entry, so this works whichever replica got the
earlier tone). Before a POST is appended, :meth:`ToneOrder.hold` waits, for each call whose
lowest tone in the POST is above the next one due (highest seen + 1), until the hub has seen
the tones before it or the reorder window has passed. A tone that comes after a later one was
released is still stored (nothing is lost); the hub logs it.

Only the lowest tone of a call in a POST is waited for: a POST holding tones 1 and 3 goes on
at once, and a tone 2 arriving later is delivered after 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from commsgw.notifications._parse import ParsedNotification

__all__ = ["ToneMarks", "ToneOrder", "in_sequence"]

log = logging.getLogger("commsgw.webhook")

CallKey = tuple[str, str]  # (tenant, call id)


class ToneMarks(Protocol):
    """The hub's side (``commsgw.eventlog._hub.ToneMarks``)."""

    def highest(self, key: CallKey) -> int: ...
    def changed(self, key: CallKey) -> asyncio.Event: ...


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
    """Holds a POST whose tones come too early (see the module docstring)."""

    def __init__(self, marks: ToneMarks, window_s: float) -> None:
        self._marks = marks
        self.window_s = window_s
        self.holding = 0  # POSTs waiting now

    async def hold(self, items: Sequence[ParsedNotification]) -> None:
        lowest: dict[CallKey, int] = {}
        for item in items:
            tone = _tone(item)
            if tone is not None:
                key, seq = tone
                lowest[key] = min(seq, lowest.get(key, seq))
        marks = self._marks
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
