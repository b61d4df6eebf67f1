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
from commsgw.eventlog._base import (
    Appended,
    AppendResult,
    EventLog,
    LogEntry,
    Position,
)


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
        latest = self._latest
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
            self._seen[item.dedup_key] = now
            self._seq += 1
            entry = LogEntry((self._seq, 0), item.event)
            entry.traceparent = traceparent
            self._entries.append((now, entry))
            if item.operation_key is not None:
                self._latest[item.operation_key] = (now, entry)
                self._latest.move_to_end(item.operation_key)
            stored.append(entry)
        self._trim(now)
        if stored and self._listener is not None:
            self._listener(stored)
        return AppendResult(len(stored), duplicates)

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
