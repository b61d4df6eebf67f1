"""The call index of both event logs (in memory, and Redis on 127.0.0.1:6379 with a key prefix
of its own): stale call updates are stored flagged and leave the latest state alone, an
observed end is stored once, and Graph's end after it is flagged as the same end; what is read
back (the listener, ranges, the index) says the same on both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest

from commsgw.eventlog import EventLog, LogEntry, MemoryEventLog
from commsgw.eventlog._redis import RedisEventLog
from commsgw.keepalive._reconcile import observed_end
from graphcomms.v1 import calls_pb2 as pb
from helpers.polling import eventually
from helpers.shared_redis import SHARED_REDIS, key_prefix

TENANT = "11111111-1111-1111-1111-111111111111"


@dataclass(frozen=True)
class Item:
    event: pb.Event
    dedup_key: bytes
    operation_key: tuple[str, str, str] | None = None


def update(call: str, state: int) -> Item:
    event = pb.Event(
        tenant_id=TENANT,
        call_id=call,
        change_type=pb.CHANGE_TYPE_UPDATED,
        call_update=pb.CallUpdate(state=state, origin=pb.CALL_UPDATE_ORIGIN_GRAPH),
    )
    return Item(event, uuid.uuid4().bytes)


def end_of(call: str) -> Item:
    found = observed_end(TENANT, call, pb.OBSERVED_END_REASON_GRAPH_NOT_FOUND, "test")
    return Item(found.event, found.dedup_key)


class Seen:
    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    def __call__(self, batch: Sequence[LogEntry]) -> None:
        self.entries.extend(batch)


@pytest.fixture(params=["memory", "redis"])
async def log(request: pytest.FixtureRequest) -> AsyncIterator[tuple[EventLog, Seen]]:
    seen = Seen()
    if request.param == "memory":
        mem = MemoryEventLog(max_events=1000, max_age_s=600)
        await mem.start(seen)
        yield mem, seen
        await mem.close()
        return
    async with key_prefix("callindex") as prefix:
        red = RedisEventLog(SHARED_REDIS, key_prefix=prefix, max_events=1000, max_age_s=600)
        await red.start(seen)
        try:
            yield red, seen
        finally:
            await red.close()


async def delivered(seen: Seen, n: int) -> list[LogEntry]:
    await eventually(lambda: len(seen.entries) >= n, what=f"{n} entries handed over")
    return seen.entries


def states(entries: Sequence[LogEntry]) -> list[tuple[int, bool]]:
    return [(e.event.call_update.state, e.event.call_update.stale) for e in entries]


async def test_a_stale_update_is_stored_flagged_and_the_latest_state_stays(
    log: tuple[EventLog, Seen],
) -> None:
    elog, seen = log
    call = str(uuid.uuid4())
    est, ing = pb.CALL_STATE_ESTABLISHED, pb.CALL_STATE_ESTABLISHING
    for state in (est, ing, pb.CALL_STATE_HOLD, est):
        assert (await elog.append([update(call, state)])).appended == 1
    entries = await delivered(seen, 4)
    want = [(est, False), (ing, True), (pb.CALL_STATE_HOLD, False), (est, False)]
    assert states(entries) == want
    # Read back from the log itself (Redis: decoded again), the flags are the same.
    assert states(await elog.read_range((0, 0), entries[-1].position, 10)) == want
    latest = await elog.latest_call((TENANT, call))
    assert latest is not None and latest.position == entries[3].position
    # A stale update as the newest entry: the index still points at the one before it.
    await elog.append([update(call, ing)])
    entries = await delivered(seen, 5)
    assert entries[4].event.call_update.stale
    latest = await elog.latest_call((TENANT, call))
    assert latest is not None and latest.position == entries[3].position
    assert [e.position for e in await elog.latest_calls()] == [entries[3].position]


async def test_an_observed_end_is_stored_once_and_graphs_end_confirms_it(
    log: tuple[EventLog, Seen],
) -> None:
    elog, seen = log
    call = str(uuid.uuid4())
    await elog.append([update(call, pb.CALL_STATE_ESTABLISHED)])
    first = await elog.append([end_of(call)])
    again = await elog.append([end_of(call)])  # a second replica noticing too
    assert (first.appended, again.appended, again.duplicates) == (1, 0, 1)
    entries = await delivered(seen, 2)
    assert entries[1].event.call_update.origin == pb.CALL_UPDATE_ORIGIN_GATEWAY
    # Graph's own end comes after all: the same end, flagged; then it is the latest state.
    await elog.append([update(call, pb.CALL_STATE_TERMINATED)])
    entries = await delivered(seen, 3)
    assert len(entries) == 3
    confirm = entries[2].event.call_update
    assert confirm.confirms_observed_end and not confirm.stale
    ranged = await elog.read_range((0, 0), entries[-1].position, 10)
    assert [e.event.call_update.confirms_observed_end for e in ranged] == [False, False, True]
    latest = await elog.latest_call((TENANT, call))
    assert latest is not None and latest.position == entries[2].position
    # A late "established" from Graph after the end: stale.
    await elog.append([update(call, pb.CALL_STATE_ESTABLISHED)])
    entries = await delivered(seen, 4)
    assert entries[3].event.call_update.stale


async def test_no_observed_end_after_graphs_own(log: tuple[EventLog, Seen]) -> None:
    elog, seen = log
    call = str(uuid.uuid4())
    await elog.append([update(call, pb.CALL_STATE_ESTABLISHED)])
    await elog.append([update(call, pb.CALL_STATE_TERMINATED)])
    result = await elog.append([end_of(call)])
    assert (result.appended, result.duplicates) == (0, 1)
    marker = await elog.append([update(str(uuid.uuid4()), pb.CALL_STATE_INCOMING)])
    assert marker.appended == 1
    entries = await delivered(seen, 3)
    assert [e.event.call_update.origin for e in entries[:2]] == [pb.CALL_UPDATE_ORIGIN_GRAPH] * 2
    assert len(entries) == 3


async def test_operation_snapshot_is_unchanged_by_call_entries(log: tuple[EventLog, Seen]) -> None:
    elog, seen = log
    call = str(uuid.uuid4())
    op = Item(
        pb.Event(
            tenant_id=TENANT,
            call_id=call,
            operation_update=pb.OperationUpdate(operation=pb.Operation(id="op-1")),
        ),
        uuid.uuid4().bytes,
        (TENANT, call, "op-1"),
    )
    await elog.append([op, update(call, pb.CALL_STATE_ESTABLISHED)])
    await delivered(seen, 2)
    assert [e.kind for e in await elog.latest_operations()] == ["operation_update"]
    assert [e.kind for e in await elog.latest_calls()] == ["call_update"]
