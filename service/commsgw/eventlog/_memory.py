"""The in-memory event log: one process, bounded by count and by age.

Positions are (sequence, 0). The log id is random per process, so a token from before a
restart is recognised as coming from another log (OUT_OF_RANGE) rather than misread.

What it retains is kept out of the garbage collector's walk: each entry is stored as a tuple of
atomic values (`_Rec`: stored-at time, sequence, the serialised event, its traceparent and the
fields filters read), which the collector stops tracking after its first look, and a
`LogEntry` is made from it when it is read (catch-up, snapshots, the indexes), its event decoded
only if something asks for it. The live entries handed to the hub at append are the ones made
there. With objects per entry, 100,000 retained entries made a full collection walk
about 400,000 objects (60 to 80 ms, every stream stalled meanwhile: bench/notes.md).
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable, Sequence

from commsgw._errors import ResumeTokenExpired
from commsgw.eventlog import _callstates as cs
from commsgw.eventlog._base import (
    Appended,
    AppendResult,
    EventLog,
    LogEntry,
    Position,
    StoredFields,
)
from graphcomms.v1 import calls_pb2

# (stored at, sequence, serialised Event, traceparent, the fields filters read): atomic values.
_Rec = tuple[float, int, bytes, str, StoredFields]


def _view(rec: _Rec) -> LogEntry:
    return LogEntry.stored((rec[1], 0), rec[2], rec[3], rec[4])


class MemoryEventLog(EventLog):
    def __init__(
        self,
        *,
        max_events: int,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log_id = "mem-" + uuid.uuid4().hex
        self._max_events = max_events
        self._max_age = max_age_s
        self._clock = clock
        self._entries: collections.deque[_Rec] = collections.deque()
        self._seq = 0
        self._trimmed_through = 0  # highest sequence no longer retained
        self._seen: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self._latest: collections.OrderedDict[tuple[str, str, str], _Rec] = (
            collections.OrderedDict()
        )
        # The latest (not stale) call update of every call, as _latest for operations, with
        # its state and whether the gateway observed it (what the state-order decision reads).
        self._calls: collections.OrderedDict[tuple[str, str], tuple[_Rec, int, bool]] = (
            collections.OrderedDict()
        )
        self._listener: Callable[[Sequence[LogEntry]], None] | None = None

    async def start(
        self,
        listener: Callable[[Sequence[LogEntry]], None],
        on_gap: Callable[[Position | None], None] | None = None,
    ) -> Position:
        # In memory the listener is called inside append: it never misses an entry.
        self._listener = listener
        return (self._seq, 0)

    async def close(self) -> None:
        self._listener = None

    @property
    def ready(self) -> bool:
        return True

    def _trim(self, now: float) -> None:
        oldest = now - self._max_age
        entries = self._entries
        while entries and (len(entries) > self._max_events or entries[0][0] < oldest):
            self._trimmed_through = entries.popleft()[1]
        seen = self._seen
        while seen and (len(seen) > 2 * self._max_events or next(iter(seen.values())) < oldest):
            seen.popitem(last=False)
        latest = self._latest
        while latest and (
            len(latest) > self._max_events or next(iter(latest.values()))[0] < oldest
        ):
            latest.popitem(last=False)
        calls = self._calls
        while calls and (
            len(calls) > self._max_events or next(iter(calls.values()))[0][0] < oldest
        ):
            calls.popitem(last=False)

    async def append(self, items: Sequence[Appended], *, traceparent: str = "") -> AppendResult:
        now = self._clock()
        self._trim(now)
        stored: list[LogEntry] = []
        duplicates = 0
        for item in items:
            if item.dedup_key in self._seen:
                duplicates += 1
                continue
            call = cs.call_key(item.event)
            decision = self._decide(call, item.event.call_update) if call else cs.Decision.KEEP
            if decision is cs.Decision.DROP:
                duplicates += 1
                continue
            self._seen[item.dedup_key] = now
            self._seq += 1
            if call is not None:
                cs.mark(item.event.call_update, decision)
            entry = LogEntry((self._seq, 0), item.event)
            entry.traceparent = traceparent
            rec = (now, self._seq, entry.payload, traceparent, entry.fields())
            self._entries.append(rec)
            if item.operation_key is not None:
                self._latest[item.operation_key] = rec
                self._latest.move_to_end(item.operation_key)
            if call is not None and decision in (cs.Decision.APPLY, cs.Decision.CONFIRM):
                update = item.event.call_update
                self._calls[call] = (rec, update.state, cs.is_observed(update))
                self._calls.move_to_end(call)
            stored.append(entry)
        self._trim(now)
        if stored and self._listener is not None:
            self._listener(stored)
        return AppendResult(len(stored), duplicates)

    def _decide(self, call: tuple[str, str], update: calls_pb2.CallUpdate) -> cs.Decision:
        found = self._calls.get(call)
        latest = (found[1], found[2]) if found is not None else None
        return cs.decide(latest, update.state, observed=cs.is_observed(update))

    async def read_range(self, after: Position, until: Position, limit: int) -> list[LogEntry]:
        entries = self._entries
        if not entries:
            return []
        first = entries[0][1]
        start = max(0, after[0] + 1 - first)
        out: list[LogEntry] = []
        for i in range(start, len(entries)):
            rec = entries[i]
            if (rec[1], 0) > until or len(out) >= limit:
                break
            out.append(_view(rec))
        return out

    async def check_resumable(self, position: Position) -> None:
        self._trim(self._clock())
        if position[0] > self._seq:
            raise ResumeTokenExpired("resume_token points past the end of the event log")
        if position[0] < self._trimmed_through:
            raise ResumeTokenExpired(
                "resume_token is older than what the event log retains; resume without a "
                "token (include_snapshot gives the latest state of every operation)"
            )

    async def latest_operations(self) -> list[LogEntry]:
        self._trim(self._clock())
        return [_view(r) for r in sorted(self._latest.values(), key=lambda r: r[1])]

    async def latest_operation(self, key: tuple[str, str, str]) -> LogEntry | None:
        self._trim(self._clock())
        found = self._latest.get(key)
        return _view(found) if found is not None else None

    async def latest_calls(self) -> list[LogEntry]:
        self._trim(self._clock())
        return [_view(r) for r, _, _ in sorted(self._calls.values(), key=lambda c: c[0][1])]

    async def latest_call(self, key: tuple[str, str]) -> LogEntry | None:
        self._trim(self._clock())
        found = self._calls.get(key)
        return _view(found[0]) if found is not None else None
