"""The in-memory event log: one process, bounded by count and by age.

Positions are (sequence, 0). The log id is random per process, so a token from before a
restart is recognised as coming from another log (OUT_OF_RANGE) rather than misread.
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
)
from graphcomms.v1 import calls_pb2


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
        self._entries: collections.deque[tuple[float, LogEntry]] = collections.deque()
        self._seq = 0
        self._trimmed_through = 0  # highest sequence no longer retained
        self._seen: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self._latest: collections.OrderedDict[tuple[str, str, str], tuple[float, LogEntry]] = (
            collections.OrderedDict()
        )
        # The latest (not stale) call update of every call, as _latest for operations.
        self._calls: collections.OrderedDict[tuple[str, str], tuple[float, LogEntry]] = (
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
            self._trimmed_through = entries.popleft()[1].position[0]
        seen = self._seen
        while seen and (len(seen) > 2 * self._max_events or next(iter(seen.values())) < oldest):
            seen.popitem(last=False)
        for latest in (self._latest, self._calls):
            while latest and (
                len(latest) > self._max_events or next(iter(latest.values()))[0] < oldest
            ):
                latest.popitem(last=False)

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
            self._entries.append((now, entry))
            if item.operation_key is not None:
                self._latest[item.operation_key] = (now, entry)
                self._latest.move_to_end(item.operation_key)
            if call is not None and decision in (cs.Decision.APPLY, cs.Decision.CONFIRM):
                self._calls[call] = (now, entry)
                self._calls.move_to_end(call)
            stored.append(entry)
        self._trim(now)
        if stored and self._listener is not None:
            self._listener(stored)
        return AppendResult(len(stored), duplicates)

    def _decide(self, call: tuple[str, str], update: calls_pb2.CallUpdate) -> cs.Decision:
        found = self._calls.get(call)
        latest = None
        if found is not None:
            known = found[1].event.call_update
            latest = (known.state, cs.is_observed(known))
        return cs.decide(latest, update.state, observed=cs.is_observed(update))

    async def read_range(self, after: Position, until: Position, limit: int) -> list[LogEntry]:
        entries = self._entries
        if not entries:
            return []
        first = entries[0][1].position[0]
        start = max(0, after[0] + 1 - first)
        out: list[LogEntry] = []
        for i in range(start, len(entries)):
            e = entries[i][1]
            if e.position > until or len(out) >= limit:
                break
            out.append(e)
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
        return sorted((e for _, e in self._latest.values()), key=lambda e: e.position)

    async def latest_operation(self, key: tuple[str, str, str]) -> LogEntry | None:
        self._trim(self._clock())
        found = self._latest.get(key)
        return found[1] if found is not None else None

    async def latest_calls(self) -> list[LogEntry]:
        self._trim(self._clock())
        return sorted((e for _, e in self._calls.values()), key=lambda e: e.position)

    async def latest_call(self, key: tuple[str, str]) -> LogEntry | None:
        self._trim(self._clock())
        found = self._calls.get(key)
        return found[1] if found is not None else None
