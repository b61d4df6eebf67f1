"""Batched delivery (WatchOperationsRequest.max_events_per_response): a subscriber with a
backlog gets several events per message, each with its own resume token, exact to resume
from; without the field nothing changes; too large a batch is refused."""

from __future__ import annotations

import grpc
import pytest

from commsgw.server import Gateway
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.client_flavours import FLAVOURS, open_client
from helpers.ids import new_guid
from helpers.notifications import Poster, op_notification
from helpers.status import error_details
from helpers.watch import first_bookmark

pytestmark = pytest.mark.e2e

Resp = calls_pb2.WatchOperationsResponse


async def _read(call: grpc.aio.UnaryStreamCall, events: int) -> list[Resp]:
    """Responses until `events` events arrived (batched or not); the stream is then cancelled."""
    out: list[Resp] = []
    seen = 0
    while seen < events:
        r = await call.read()
        assert r is not grpc.aio.EOF, "the stream ended"
        out.append(r)
        seen += len(r.batch) if r.batch else int(r.WhichOneof("kind") == "event")
    call.cancel()
    return out


def _events(responses: list[Resp]) -> list[Resp]:
    """Every event response, batches unpacked, in order."""
    out: list[Resp] = []
    for r in responses:
        out += list(r.batch) if r.batch else [r] if r.WhichOneof("kind") == "event" else []
    return out


async def test_a_backlog_comes_in_batches_each_event_with_its_own_token(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Poster
) -> None:
    call_id = new_guid()
    ops = [new_guid() for _ in range(30)]
    token = await first_bookmark(f"127.0.0.1:{gateway.grpc_port}", call_id)
    assert (await poster.post([op_notification(call_id, o) for o in ops])).status_code == 202
    # Resuming before all 30: the backlog is read from the log, 8 per message at most.
    responses = await _read(
        stub.WatchOperations(
            calls_pb2.WatchOperationsRequest(
                call_ids=[call_id], resume_token=token, max_events_per_response=8
            )
        ),
        30,
    )
    assert [len(r.batch) for r in responses] == [8, 8, 8, 6]
    for r in responses:
        assert r.WhichOneof("kind") is None  # a batch has no event of its own
        assert r.resume_token == r.batch[-1].resume_token
    events = _events(responses)
    assert [e.event.operation_update.operation.id for e in events] == ops
    assert len({e.resume_token for e in events}) == 30
    # Each element's token resumes exactly after it.
    again = await _read(
        stub.WatchOperations(
            calls_pb2.WatchOperationsRequest(
                call_ids=[call_id], resume_token=events[11].resume_token
            )
        ),
        18,
    )
    assert [e.event.operation_update.operation.id for e in _events(again)] == ops[12:]
    assert all(not r.batch for r in again)  # without the field: one event per message


async def test_a_batch_size_over_the_limit_is_refused(
    stub: calls_pb2_grpc.CallsServiceStub,
) -> None:
    call = stub.WatchOperations(calls_pb2.WatchOperationsRequest(max_events_per_response=1001))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(info.value)[0].reason == "INVALID_BATCH_SIZE"


async def test_live_events_queued_together_go_out_together(
    stub: calls_pb2_grpc.CallsServiceStub, poster: Poster
) -> None:
    call_id = new_guid()
    ops = [new_guid() for _ in range(20)]
    call = stub.WatchOperations(
        calls_pb2.WatchOperationsRequest(call_ids=[call_id], max_events_per_response=50)
    )
    first = await call.read()
    assert first.bookmark.kind == calls_pb2.BOOKMARK_KIND_START
    # One POST stores the 20 at once: they are queued together before the stream sends.
    assert (await poster.post([op_notification(call_id, o) for o in ops])).status_code == 202
    responses = await _read(call, 20)
    assert [e.event.operation_update.operation.id for e in _events(responses)] == ops
    assert len(responses) < 20, "nothing was batched"


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_python_client_asks_for_batches_and_hands_out_one_event_at_a_time(
    gateway: Gateway, poster: Poster, flavour: str
) -> None:
    call_id = new_guid()
    ops = [new_guid() for _ in range(40)]
    target = f"127.0.0.1:{gateway.grpc_port}"
    token = await first_bookmark(target, call_id)
    assert (await poster.post([op_notification(call_id, o) for o in ops])).status_code == 202
    async with open_client(flavour, target) as gw:
        watch = gw.watch_operations(call_ids=[call_id], resume_token=token, bookmarks=False)
        assert watch._resume.connect().max_events_per_response > 1
        got: list[tuple[str, str]] = []
        async for r in watch:
            assert not r.batch
            got.append((r.event.operation_update.operation.id, watch.resume_token))
            if len(got) == 40:
                break
        watch.close()
    assert [op for op, _ in got] == ops
    # The token after each event is that event's own: resuming from any continues after it.
    assert len({tok for _, tok in got}) == 40
    async with open_client(flavour, target) as gw:
        again = gw.watch_operations(call_ids=[call_id], resume_token=got[24][1], bookmarks=False)
        first = await anext(again)
        again.close()
    assert first.event.operation_update.operation.id == ops[25]
