"""How the hub batches a watch (max_batch): the catch-up from a resume position, the snapshot
and the live stream all cut their entries the same way (`chunks`), in order, each batch at
most max_batch entries; a real in-memory log and hub, no network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from commsgw.eventlog import Hub, MemoryEventLog, WatchFilter, WatchItem
from commsgw.eventlog._base import ZERO, Position, chunks
from graphcomms.v1 import calls_pb2
from helpers.log_items import op_item
from helpers.polling import eventually

WAIT_S = 10.0
END: Position = (2**62, 0)
EVERYTHING = WatchFilter.build(
    call_ids=[],
    tenant_ids=[],
    op_types=(),
    statuses=(),
    client_context="",
    include_calls=False,
    include_other=False,
)


def test_chunks_keep_the_order_and_take_an_item_only_for_the_chunk_being_made() -> None:
    assert list(chunks(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(chunks(range(4), 2)) == [[0, 1], [2, 3]]
    assert list(chunks([], 3)) == []
    taken: list[int] = []

    def source() -> Iterator[int]:
        for i in range(5):
            taken.append(i)
            yield i

    it = chunks(source(), 2)
    assert next(it) == [0, 1]
    assert taken == [0, 1]  # nothing read ahead of the chunk handed out
    with pytest.raises(ValueError, match="at least 1"):
        list(chunks([1], 0))


def _ids(item: WatchItem) -> list[str]:
    """The operation ids of a watch item (a batch or one entry)."""
    singles = item.batch or (item,)
    assert all(s.entry is not None for s in singles)
    return [s.entry.event.operation_update.operation.id for s in singles if s.entry is not None]


@pytest.fixture
async def hub() -> AsyncIterator[tuple[MemoryEventLog, Hub]]:
    log = MemoryEventLog(max_events=1000, max_age_s=600)
    hub = Hub(log, buffer=100)
    await hub.start()
    try:
        yield log, hub
    finally:
        hub.close()
        await log.close()


async def test_catch_up_and_live_entries_come_in_batches_of_at_most_max_batch(
    hub: tuple[MemoryEventLog, Hub],
) -> None:
    log, h = hub
    await log.append([op_item(f"op-{i}") for i in range(6)])
    stored = await log.read_range(ZERO, END, 100)
    await eventually(lambda: h.head == stored[-1].position, what="the hub has seen them all")
    resume = stored[0].position  # op-0 seen: the catch-up is op-1..op-5
    items = h.watch(EVERYTHING, resume=resume, snapshot=False, bookmark_interval=60, max_batch=2)
    try:
        caught_up = [_ids(await asyncio.wait_for(anext(items), WAIT_S)) for _ in range(3)]
        assert caught_up == [["op-1", "op-2"], ["op-3", "op-4"], ["op-5"]]
        # Live: three entries queued together go out as a batch of two, then one.
        pending = asyncio.ensure_future(anext(items))
        await log.append([op_item(f"op-{i}") for i in range(6, 9)])
        live = [_ids(await asyncio.wait_for(pending, WAIT_S))]
        live.append(_ids(await asyncio.wait_for(anext(items), WAIT_S)))
        assert live == [["op-6", "op-7"], ["op-8"]]
    finally:
        await items.aclose()  # type: ignore[attr-defined]


async def test_the_snapshot_comes_in_batches_then_its_end(
    hub: tuple[MemoryEventLog, Hub],
) -> None:
    log, h = hub
    await log.append([op_item(f"op-{i}") for i in range(3)])
    stored = await log.read_range(ZERO, END, 100)
    await eventually(lambda: h.head == stored[-1].position, what="the hub has seen them all")
    items = h.watch(EVERYTHING, resume=None, snapshot=True, bookmark_interval=60, max_batch=2)
    try:
        got = [await asyncio.wait_for(anext(items), WAIT_S) for _ in range(3)]
    finally:
        await items.aclose()  # type: ignore[attr-defined]
    assert [_ids(i) for i in got[:2]] == [["op-0", "op-1"], ["op-2"]]
    assert got[2].entry is None and got[2].bookmark == calls_pb2.BOOKMARK_KIND_SNAPSHOT_END
