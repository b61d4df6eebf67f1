"""The in-memory event log (commsgw.eventlog._memory.MemoryEventLog) with an injected clock:
order, dedup, trimming by count and by age, ranges, resumability, latest operations."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from commsgw._errors import ResumeTokenExpired
from commsgw.eventlog._base import ZERO, LogEntry, Position
from commsgw.eventlog._memory import MemoryEventLog
from graphcomms.v1 import calls_pb2
from helpers.log_items import call_item, op_item
from helpers.log_items import op_ids as ids

END: Position = (2**62, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Listener:
    def __init__(self) -> None:
        self.batches: list[list[LogEntry]] = []

    def __call__(self, batch: Sequence[LogEntry]) -> None:
        self.batches.append(list(batch))


def make(max_events: int = 100, max_age_s: float = 60.0) -> tuple[MemoryEventLog, Clock]:
    clock = Clock()
    return MemoryEventLog(max_events=max_events, max_age_s=max_age_s, clock=clock), clock


async def test_appends_are_stored_in_order_and_handed_to_the_listener() -> None:
    log, _ = make()
    assert log.ready
    assert log.log_id.startswith("mem-")
    listener = Listener()
    assert await log.start(listener) == ZERO
    r1 = await log.append([op_item("a"), op_item("b")])
    r2 = await log.append([call_item(), op_item("c")])
    assert (r1.appended, r1.duplicates, r2.appended, r2.duplicates) == (2, 0, 2, 0)
    assert [[e.position for e in b] for b in listener.batches] == [
        [(1, 0), (2, 0)],
        [(3, 0), (4, 0)],
    ]
    every = await log.read_range(ZERO, END, 100)
    assert [e.kind for e in every] == [
        "operation_update",
        "operation_update",
        "call_update",
        "operation_update",
    ]
    assert [e.position for e in every] == [(1, 0), (2, 0), (3, 0), (4, 0)]
    # A listener started later gets the head: the position of the last entry stored.
    assert await log.start(Listener()) == (4, 0)


def test_each_process_has_its_own_log_id() -> None:
    assert make()[0].log_id != make()[0].log_id


async def test_duplicates_are_dropped_in_one_body_and_across_bodies() -> None:
    log, _ = make()
    listener = Listener()
    await log.start(listener)
    r = await log.append(
        [op_item("a", dedup="k1"), op_item("a", dedup="k1"), op_item("b", dedup="k2")]
    )
    assert (r.appended, r.duplicates) == (2, 1)
    r = await log.append([op_item("a", dedup="k1")])
    assert (r.appended, r.duplicates) == (0, 1)
    assert ids(await log.read_range(ZERO, END, 100)) == ["a", "b"]
    assert len(listener.batches) == 1  # nothing stored, nothing handed over


async def test_the_dedup_window_is_the_retention_window() -> None:
    log, clock = make(max_age_s=10)
    assert (await log.append([op_item("a", dedup="k")])).appended == 1
    clock.now += 9
    assert (await log.append([op_item("a", dedup="k")])).duplicates == 1
    clock.now += 2  # the first one is now 11 s old
    assert (await log.append([op_item("a", dedup="k")])).appended == 1


async def test_trimming_by_count() -> None:
    log, _ = make(max_events=3)
    for i in range(1, 6):
        await log.append([op_item(str(i))])
    assert ids(await log.read_range(ZERO, END, 100)) == ["3", "4", "5"]
    # Entries 1 and 2 are gone: a token at 2 (the last trimmed) resumes with 3, which is kept.
    await log.check_resumable((2, 0))
    await log.check_resumable((5, 0))
    for old in (ZERO, (1, 0)):
        with pytest.raises(ResumeTokenExpired):
            await log.check_resumable(old)
    assert ids(await log.latest_operations()) == ["3", "4", "5"]


async def test_trimming_by_age() -> None:
    log, clock = make(max_age_s=10)
    await log.append([op_item("old")])
    clock.now += 5
    await log.append([op_item("newer")])
    await log.check_resumable(ZERO)
    clock.now += 6  # "old" is 11 s old, "newer" 6 s
    with pytest.raises(ResumeTokenExpired, match="older than"):
        await log.check_resumable(ZERO)  # checking trims by the clock too
    await log.check_resumable((1, 0))
    assert ids(await log.read_range(ZERO, END, 100)) == ["newer"]
    assert ids(await log.latest_operations()) == ["newer"]
    clock.now += 5
    assert await log.latest_operations() == []
    await log.append([op_item("next")])
    assert ids(await log.read_range(ZERO, END, 100)) == ["next"]


async def test_read_range_is_after_exclusive_until_inclusive_and_limited() -> None:
    log, _ = make()
    assert await log.read_range(ZERO, END, 10) == []
    await log.append([op_item(str(i)) for i in range(1, 6)])
    assert ids(await log.read_range((1, 0), (4, 0), 10)) == ["2", "3", "4"]
    assert ids(await log.read_range((1, 0), (4, 0), 2)) == ["2", "3"]
    assert ids(await log.read_range((4, 0), END, 10)) == ["5"]
    assert await log.read_range((5, 0), (5, 0), 10) == []
    assert await log.read_range((4, 0), (2, 0), 10) == []
    assert await log.read_range((1, 0), (5, 0), 0) == []


async def test_read_range_from_before_what_is_kept_starts_at_the_oldest_kept() -> None:
    log, _ = make(max_events=2)
    await log.append([op_item(str(i)) for i in range(1, 6)])
    assert ids(await log.read_range(ZERO, END, 10)) == ["4", "5"]


async def test_a_position_past_the_end_is_refused() -> None:
    log, _ = make()
    await log.check_resumable(ZERO)
    with pytest.raises(ResumeTokenExpired, match="past the end"):
        await log.check_resumable((1, 0))
    await log.append([op_item("a")])
    await log.check_resumable((1, 0))


async def test_latest_operations_is_the_last_state_of_each_in_position_order() -> None:
    log, _ = make()
    await log.append([op_item("op1"), call_item(), op_item("op2")])
    await log.append([op_item("op1", calls_pb2.OPERATION_STATUS_COMPLETED)])
    latest = await log.latest_operations()
    assert ids(latest) == ["op2", "op1"]
    assert latest[1].status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert [e.position for e in latest] == [(3, 0), (4, 0)]  # no call updates


async def test_what_the_log_retains_is_not_walked_by_the_garbage_collector() -> None:
    """Retained entries are atomic values, which the collector stops tracking: a full
    collection walks as many objects with 2,000 entries retained as with none."""
    import gc

    log, _ = make(max_events=10_000, max_age_s=3600)
    await log.start(lambda batch: None)  # the live entries go nowhere: only what is retained
    gc.collect()
    before = len(gc.get_objects())
    await log.append([op_item(f"op-{i}") for i in range(2_000)])
    gc.collect()
    assert len(gc.get_objects()) - before < 100
    # and what is read back is whole: the event decoded from what was stored
    (got,) = [e for e in await log.read_range(ZERO, END, 10_000) if e.position == (2_000, 0)]
    assert got.event.operation_update.operation.id == "op-1999"
    assert got.payload == got.event.SerializeToString()
