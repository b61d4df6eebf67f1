"""Fan-out: every stored entry goes to the local subscribers whose filter it matches.

The event log hands entries to `Hub.dispatch` in log order. Subscribers watching given calls are
indexed by call id, so matching an entry costs time in proportion to the subscribers of that
call (plus those watching every call), not to all subscribers. Each subscriber has a bounded
buffer: when it overflows, only that subscriber is cut off (SUBSCRIBER_TOO_SLOW); ingestion
and the others go on. A watch resumes from a position by reading the log up to the hub's
head at the moment it registered, then continues live, so no entry is missed or repeated.

Other parts follow the call updates dispatched through `Hub.observe_calls` (managed keepAlive,
the DTMF tone order of `commsgw.notifications`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass

from commsgw._errors import EventLogUnavailable, ShuttingDown, SubscriberTooSlow
from commsgw.eventlog._base import KIND_CALL, EventLog, LogEntry, Position, WatchFilter, chunks
from graphcomms.v1 import calls_pb2

log = logging.getLogger("commsgw.hub")

CATCH_UP_PAGE = 500


@dataclass(frozen=True, slots=True)
class WatchItem:
    """One thing to send: an entry, a bookmark (entry None) of the given kind, or a batch of
    entry items (`batch`, with `position` the last one's) sent as one message."""

    position: Position
    entry: LogEntry | None = None
    bookmark: int = calls_pb2.BOOKMARK_KIND_UNSPECIFIED
    batch: tuple[WatchItem, ...] = ()


def _position(e: LogEntry) -> Position:
    return e.position


def _batched(items: list[WatchItem]) -> WatchItem:
    return items[0] if len(items) == 1 else WatchItem(items[-1].position, batch=tuple(items))


def _chunks(items: Iterator[WatchItem] | list[WatchItem], size: int) -> Iterator[WatchItem]:
    """`items` as watch items of up to `size` entries each (one entry alone stays itself):
    how the catch-up, the snapshot and the live stream batch alike."""
    return map(_batched, chunks(items, size))


def _fresh(queue: collections.deque[LogEntry], skip_through: Position) -> Iterator[WatchItem]:
    """The queued entries past `skip_through`, each taken off the queue only when asked for."""
    while queue:
        e = queue.popleft()
        if e.position > skip_through:
            yield WatchItem(e.position, e)


class Subscription:
    __slots__ = (
        "bookmark_due",
        "closing",
        "filter",
        "interval",
        "lost",
        "maxlen",
        "overflowed",
        "queue",
        "skip_through",
        "waiter",
        "waiting_since",
    )

    def __init__(self, flt: WatchFilter, maxlen: int, interval: float) -> None:
        self.filter = flt
        self.maxlen = maxlen
        self.interval = interval
        self.waiting_since = 0.0  # loop time it started waiting for entries; 0 when busy
        self.bookmark_due = False
        self.queue: collections.deque[LogEntry] = collections.deque()
        self.waiter = asyncio.Event()
        self.overflowed = False
        self.lost = False
        self.closing = False
        self.skip_through: Position = (0, 0)

    def offer(self, entry: LogEntry) -> None:
        if self.overflowed:
            return
        if len(self.queue) >= self.maxlen:
            self.overflowed = True
            self.queue.clear()
        else:
            self.queue.append(entry)
        self.waiter.set()


class Hub:
    def __init__(
        self,
        log: EventLog,
        *,
        buffer: int,
        on_dispatch: Callable[[LogEntry], None] | None = None,
    ) -> None:
        self._log = log
        self._buffer = buffer
        self._on_dispatch = on_dispatch
        self.head: Position = (0, 0)
        self._by_call: dict[str, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self._all: set[Subscription] = set()
        self._closing = False
        # One timer for every idle stream's progress bookmarks (cheaper than a timeout per
        # wait, which every delivered event would set up and cancel).
        self._tick = 1.0
        self._ticker: asyncio.Task[None] | None = None
        self.delivered = 0
        self.cut_for_slowness = 0
        # Called with every call update dispatched (in log order): managed keepAlive, the
        # DTMF tone order.
        self._call_observers: list[Callable[[LogEntry], None]] = []

    async def start(self) -> None:
        self.head = await self._log.start(self.dispatch, on_gap=self.fail_all)
        self._ticker = asyncio.get_running_loop().create_task(self._bookmarks())

    async def _bookmarks(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._tick)
            now = loop.time()
            for sub in self._all:
                if sub.waiting_since and now - sub.waiting_since >= sub.interval:
                    sub.bookmark_due = True
                    sub.waiter.set()

    def observe_calls(self, observer: Callable[[LogEntry], None]) -> None:
        """Have `observer` called with every call update dispatched from now on, in log
        order, synchronously (it must not block)."""
        self._call_observers.append(observer)

    @property
    def subscribers(self) -> int:
        return len(self._all)

    def dispatch(self, entries: Sequence[LogEntry]) -> None:
        """Called by the log with every stored entry, in order."""
        by_call = self._by_call
        everything = self._everything
        for e in entries:
            if e.position <= self.head:
                continue  # already seen (a reader that re-read after reconnecting)
            subs = by_call.get(e.call_id)
            if subs:
                for s in subs:
                    if s.filter.matches(e):
                        s.offer(e)
            for s in everything:
                if s.filter.matches(e):
                    s.offer(e)
            self.head = e.position
            if e.kind == KIND_CALL:
                for observe in self._call_observers:
                    observe(e)
        if entries and self._on_dispatch is not None:
            self._on_dispatch(entries[-1])

    def _register(self, sub: Subscription) -> None:
        self._all.add(sub)
        self._tick = min(self._tick, sub.interval / 2)
        if sub.filter.call_ids:
            for c in sub.filter.call_ids:
                self._by_call.setdefault(c, set()).add(sub)
        else:
            self._everything.add(sub)

    def _unregister(self, sub: Subscription) -> None:
        self._all.discard(sub)
        if sub.filter.call_ids:
            for c in sub.filter.call_ids:
                subs = self._by_call.get(c)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._by_call[c]
        else:
            self._everything.discard(sub)

    def close(self) -> None:
        """Shutdown: every open watch gets a final bookmark and ends UNAVAILABLE."""
        self._closing = True
        if self._ticker is not None:
            self._ticker.cancel()
        for sub in self._all:
            sub.closing = True
            sub.waiter.set()

    async def aclose(self) -> None:
        """`close`, then wait for the bookmark timer's task to end."""
        self.close()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            await asyncio.wait([ticker])

    def fail_all(self, restart: Position | None = None) -> None:
        """The log lost entries it cannot recover: end every watch so that it resumes. With
        `restart` (the log was recreated), the head moves to where the new log starts."""
        if restart is not None:
            self.head = restart
        for sub in self._all:
            sub.lost = True
            sub.waiter.set()

    async def watch(
        self,
        flt: WatchFilter,
        *,
        resume: Position | None,
        snapshot: bool,
        bookmark_interval: float,
        max_batch: int = 1,
    ) -> AsyncIterator[WatchItem]:
        """The items of one WatchOperations stream; see the module docstring. With `max_batch`
        above 1, entries already queued (or read from the log) are yielded up to that many
        together as one batch item; nothing waits to fill a batch."""
        if self._closing:
            raise ShuttingDown("the gateway is shutting down; resume on another replica")
        if not self._log.ready:
            raise EventLogUnavailable("the event log is unavailable; retry shortly")
        if resume is not None:
            await self._log.check_resumable(resume)
        sub = Subscription(flt, self._buffer, bookmark_interval)
        loop = asyncio.get_running_loop()
        self._register(sub)
        start = self.head
        position = start
        try:
            if resume is not None:
                position = resume
                sub.skip_through = resume
                cursor = resume
                while cursor < start:
                    page = await self._log.read_range(cursor, start, CATCH_UP_PAGE)
                    if not page:
                        break
                    matched = [WatchItem(e.position, e) for e in page if flt.matches(e)]
                    for item in _chunks(matched, max_batch):
                        yield item
                    position = cursor = page[-1].position
                    # Entries trimmed while catching up would be a silent gap: refuse it.
                    await self._log.check_resumable(cursor)
                position = max(position, start)
            elif snapshot:
                known = await self._log.latest_operations()
                if flt.include_calls:  # and the latest (never stale) state of every call
                    known = sorted(known + await self._log.latest_calls(), key=_position)
                latest = [
                    WatchItem(start, e) for e in known if e.position <= start and flt.matches(e)
                ]
                for item in _chunks(latest, max_batch):
                    yield item
                yield WatchItem(start, None, calls_pb2.BOOKMARK_KIND_SNAPSHOT_END)
            else:
                yield WatchItem(start, None, calls_pb2.BOOKMARK_KIND_START)
            queue = sub.queue
            while True:
                if sub.lost:
                    raise EventLogUnavailable(
                        "the shared event log lost entries before this replica read them; "
                        "resume with the last resume_token (OUT_OF_RANGE tells what is gone)"
                    )
                if sub.overflowed:
                    self.cut_for_slowness += 1
                    raise SubscriberTooSlow(
                        "the subscriber did not keep up and its buffer overflowed; resume "
                        "with the last resume_token received"
                    )
                if queue:
                    if max_batch == 1:
                        e = queue.popleft()
                        if e.position <= sub.skip_through:
                            continue
                        position = e.position
                        self.delivered += 1
                        yield WatchItem(position, e)
                        continue
                    # One batch, then the checks above again (lost, overflowed) before the next.
                    taken = next(_chunks(_fresh(queue, sub.skip_through), max_batch), None)
                    if taken is not None:
                        position = taken.position
                        self.delivered += len(taken.batch) or 1
                        yield taken
                    continue
                if sub.closing:
                    yield WatchItem(max(position, self.head), None, calls_pb2.BOOKMARK_KIND_FINAL)
                    raise ShuttingDown(
                        "the gateway is shutting down; resume with the last resume_token"
                    )
                if sub.bookmark_due:
                    sub.bookmark_due = False
                    # Queue empty: every matching entry up to the head has been sent.
                    position = max(position, self.head)
                    yield WatchItem(position, None, calls_pb2.BOOKMARK_KIND_PROGRESS)
                    continue
                sub.waiter.clear()
                sub.waiting_since = loop.time()
                await sub.waiter.wait()
                sub.waiting_since = 0.0
        finally:
            self._unregister(sub)
