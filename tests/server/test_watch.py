"""The notification path end to end: Graph emulator -> signed callbacks -> webhook -> event log
-> WatchOperations over real gRPC. Resume, expiry, slow subscribers, auth, bad bodies, fan-out."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import grpc
import pytest

from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.emulator import GraphUser
from helpers.gateway import gateway_settings, webhook_url
from helpers.ids import new_guid
from helpers.notifications import TENANT, Poster, call_notification, op_notification
from helpers.polling import eventually
from helpers.status import error_details
from helpers.watch import Resp, collect, started

pytestmark = pytest.mark.e2e


async def test_cancel_story_end_to_end(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    p1 = await graph_user.play_prompt(call_id, "prompt-1")
    p2 = await graph_user.play_prompt(call_id, "prompt-2")
    rec = await graph_user.record(call_id, "record-1")
    watch = asyncio.create_task(
        collect(
            stub,
            calls_pb2.WatchOperationsRequest(
                call_ids=[call_id.replace("-", "").upper()],
                statuses=[calls_pb2.OPERATION_STATUS_FAILED],
            ),
            3,
        )
    )
    await started(gateway, 1)
    await stub.CancelMediaProcessing(
        calls_pb2.CancelMediaProcessingRequest(call_id=call_id, client_context="cancel-1")
    )
    got = await watch
    ops = [r.event.operation_update.operation for r in got]
    assert [o.id for o in ops] == [p1, p2, rec]  # the running one first, then queue order
    for r, o in zip(got, ops, strict=True):
        assert r.event.call_id == call_id
        assert r.event.tenant_id == TENANT
        assert r.event.change_type == calls_pb2.CHANGE_TYPE_DELETED
        assert r.resume_token
        assert o.status == calls_pb2.OPERATION_STATUS_FAILED
        assert (o.result_info.code, o.result_info.subcode) == (400, 8508)
        assert o.result_info.message == "Action failed, the operation was cancelled."
    assert [o.type for o in ops] == [
        calls_pb2.OPERATION_TYPE_PLAY_PROMPT,
        calls_pb2.OPERATION_TYPE_PLAY_PROMPT,
        calls_pb2.OPERATION_TYPE_RECORD,
    ]
    assert [o.client_context for o in ops] == ["prompt-1", "prompt-2", "record-1"]
    assert ops[2].completion_reason == "operationCanceled"
    assert ops[2].recording_location == "" and ops[2].recording_access_token == ""


async def test_several_notifications_in_one_post_keep_order(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Poster
) -> None:
    call_id = new_guid()
    ops = [new_guid() for _ in range(5)]
    watch = asyncio.create_task(
        collect(stub, calls_pb2.WatchOperationsRequest(call_ids=[call_id]), 5)
    )
    await started(gateway, 1)
    r = await poster.post([op_notification(call_id, o, seq=i) for i, o in enumerate(ops)])
    assert r.status_code == 202
    got = await watch
    assert [g.event.operation_update.operation.id for g in got] == ops


async def test_resume_loses_and_repeats_nothing(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Poster
) -> None:
    call_id = new_guid()
    ops = [new_guid() for _ in range(30)]
    req = calls_pb2.WatchOperationsRequest(call_ids=[call_id])
    first = asyncio.create_task(collect(stub, req, 10))
    await started(gateway, 1)
    for i in range(0, 20, 4):
        assert (
            await poster.post([op_notification(call_id, o) for o in ops[i : i + 4]])
        ).status_code == 202
    got = await first
    # Disconnected after 10; 10 more already stored, 10 more arrive while away.
    for i in range(20, 30, 5):
        assert (
            await poster.post([op_notification(call_id, o) for o in ops[i : i + 5]])
        ).status_code == 202
    rest = await collect(
        stub,
        calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=got[-1].resume_token),
        20,
    )
    ids = [r.event.operation_update.operation.id for r in got + rest]
    assert ids == ops
    # And nothing more after that: a resume from the very last token sees only what comes
    # later (a marker posted now), nothing it had before.
    marker = new_guid()
    assert (await poster.post([op_notification(call_id, marker)])).status_code == 202
    after = await collect(
        stub,
        calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=rest[-1].resume_token),
        1,
    )
    assert [r.event.operation_update.operation.id for r in after] == [marker]


async def test_resume_with_non_matching_events_in_between(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Poster
) -> None:
    mine, other = new_guid(), new_guid()
    req = calls_pb2.WatchOperationsRequest(call_ids=[mine])
    first = asyncio.create_task(collect(stub, req, 1))
    await started(gateway, 1)
    a, b, c = new_guid(), new_guid(), new_guid()
    await poster.post([op_notification(mine, a)])
    got = await first
    await poster.post([op_notification(other, b), op_notification(mine, c)])
    rest = await collect(
        stub, calls_pb2.WatchOperationsRequest(call_ids=[mine], resume_token=got[0].resume_token), 1
    )
    assert [r.event.operation_update.operation.id for r in rest] == [c]


async def test_expired_and_foreign_tokens(emulator: Emulator) -> None:
    gw = Gateway(gateway_settings(emulator, COMMSGW_EVENT_LOG_MAX_EVENTS="5"))
    await gw.start()
    async with Poster(emulator, gw) as p:
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
                stub = calls_pb2_grpc.CallsServiceStub(ch)
                call_id = new_guid()
                first = asyncio.create_task(
                    collect(stub, calls_pb2.WatchOperationsRequest(call_ids=[call_id]), 1)
                )
                await started(gw, 1)
                await p.post([op_notification(call_id, new_guid())])
                token = (await first)[0].resume_token
                await p.post([op_notification(call_id, new_guid()) for _ in range(10)])
                for bad, code, reason in [
                    (token, grpc.StatusCode.OUT_OF_RANGE, "RESUME_TOKEN_EXPIRED"),
                    (_foreign(token), grpc.StatusCode.OUT_OF_RANGE, "RESUME_TOKEN_EXPIRED"),
                    ("garbage!", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESUME_TOKEN"),
                ]:
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await collect(
                            stub,
                            calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=bad),
                            1,
                        )
                    assert info.value.code() == code
                    assert error_details(info.value)[0].reason == reason
        finally:
            await gw.stop(0)


def _foreign(token: str) -> str:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    version, _log, pos = raw.split("|")
    return base64.urlsafe_b64encode(f"{version}|mem-{uuid.uuid4().hex}|{pos}".encode()).decode()


async def test_snapshot_then_bookmark_then_live(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Poster
) -> None:
    call_id = new_guid()
    op = new_guid()
    await poster.post([op_notification(call_id, op, status="running")])
    await poster.post([op_notification(call_id, op, status="completed")])
    call = stub.WatchOperations(
        calls_pb2.WatchOperationsRequest(call_ids=[call_id], include_snapshot=True)
    )
    it = call.__aiter__()
    snap = await anext(it)
    assert snap.event.operation_update.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
    end = await anext(it)
    assert end.bookmark.kind == calls_pb2.BOOKMARK_KIND_SNAPSHOT_END
    live_op = new_guid()
    await poster.post([op_notification(call_id, live_op)])
    live = await anext(it)
    assert live.event.operation_update.operation.id == live_op
    call.cancel()


async def test_idle_stream_gets_progress_bookmarks(emulator: Emulator) -> None:
    gw = Gateway(gateway_settings(emulator, COMMSGW_BOOKMARK_INTERVAL_S="0.2"))
    await gw.start()
    async with Poster(emulator, gw) as p:
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
                stub = calls_pb2_grpc.CallsServiceStub(ch)
                watched, unwatched = new_guid(), new_guid()
                call = stub.WatchOperations(calls_pb2.WatchOperationsRequest(call_ids=[watched]))
                it = call.__aiter__()
                first = await anext(it)
                assert first.bookmark.kind == calls_pb2.BOOKMARK_KIND_START
                await p.post([op_notification(unwatched, new_guid())])
                bm = await anext(it)
                assert bm.bookmark.kind == calls_pb2.BOOKMARK_KIND_PROGRESS
                call.cancel()
                # The bookmark moved past the unwatched event: resuming from it sees only
                # later ones.
                later = new_guid()
                await p.post([op_notification(watched, later)])
                got = await collect(
                    stub,
                    calls_pb2.WatchOperationsRequest(
                        call_ids=[watched], resume_token=bm.resume_token
                    ),
                    1,
                )
                assert got[0].event.operation_update.operation.id == later
        finally:
            await gw.stop(0)


async def test_slow_subscriber_is_cut_while_fast_one_keeps_up(emulator: Emulator) -> None:
    gw = Gateway(gateway_settings(emulator, COMMSGW_SUBSCRIBER_BUFFER="300"))
    await gw.start()
    async with Poster(emulator, gw) as p:
        try:
            target = f"127.0.0.1:{gw.grpc_port}"
            # The slow client never reads; without BDP probing its window stays small.
            async with (
                grpc.aio.insecure_channel(target, options=[("grpc.http2.bdp_probe", 0)]) as slow_ch,
                grpc.aio.insecure_channel(target) as fast_ch,
            ):
                slow = calls_pb2_grpc.CallsServiceStub(slow_ch).WatchOperations(
                    calls_pb2.WatchOperationsRequest()
                )
                await slow.wait_for_connection()
                fast_stub = calls_pb2_grpc.CallsServiceStub(fast_ch)
                fast_got: list[Resp] = []

                async def read_fast() -> None:
                    async for r in fast_stub.WatchOperations(calls_pb2.WatchOperationsRequest()):
                        if r.WhichOneof("kind") == "event":
                            fast_got.append(r)

                fast = asyncio.create_task(read_fast())
                await started(gw, 2)
                call_id = new_guid()
                big = "x" * 200
                posted = 0
                for _ in range(30):
                    batch = [op_notification(call_id, new_guid(), ctx=big) for _ in range(100)]
                    assert (await p.post(batch)).status_code == 202
                    posted += len(batch)
                    # The fast subscriber keeps up: it has everything before the next batch.
                    await eventually(
                        lambda n=posted: len(fast_got) >= n,
                        interval=0.005,
                        what="the fast one has all",
                    )
                assert not fast.done(), "the fast subscriber was cut off"
                fast.cancel()
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async with asyncio.timeout(20):
                        async for _ in slow:
                            pass
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert error_details(info.value)[0].reason == "SUBSCRIBER_TOO_SLOW"
                assert gw.hub.cut_for_slowness == 1
        finally:
            await gw.stop(0)


@pytest.mark.parametrize(
    "token_kwargs",
    [
        {"rogue_key": True},
        {"expires_in": -600},
        {"audience": "11111111-1111-1111-1111-111111111111"},
        {"iss": "https://evil.example"},
        {"kid": "unknown-kid"},
    ],
    ids=["forged", "expired", "wrong-audience", "wrong-issuer", "unknown-kid"],
)
async def test_bad_tokens_are_refused_and_nothing_is_published(
    gateway: Gateway, poster: Poster, token_kwargs: dict[str, Any]
) -> None:
    head = gateway.hub.head
    r = await poster.post(
        [op_notification(new_guid(), new_guid())], token=poster.token(**token_kwargs)
    )
    assert r.status_code == 401
    assert gateway.hub.head == head


async def test_unsigned_and_missing_tokens_are_refused(gateway: Gateway, poster: Poster) -> None:
    head = gateway.hub.head
    good = poster.token()
    header, payload, _sig = good.split(".")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    for token in (f"{none_header}.{payload}.", f"{header}.{payload}.", "", "not-a-jwt"):
        r = await poster.post([op_notification(new_guid(), new_guid())], token=token)
        assert r.status_code == 401, token
    assert gateway.hub.head == head


async def test_bad_bodies(gateway: Gateway, poster: Poster) -> None:
    head = gateway.hub.head
    assert (await poster.post([], content=b"{not json")).status_code == 400
    assert (await poster.post([], content=b'{"value": 5}')).status_code == 400
    assert (await poster.post([], content=b"[1,2]")).status_code == 400
    assert (await poster.post([], content=b"{}", content_type="text/plain")).status_code == 415
    huge = b'{"value":[' + b'{"resourceUrl":"x"},' * 100_000 + b"{}]}"
    assert (await poster.post([], content=huge)).status_code == 413
    assert gateway.hub.head == head


async def test_duplicate_delivery_is_published_once(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Poster
) -> None:
    call_id, op = new_guid(), new_guid()
    watch = asyncio.create_task(
        collect(stub, calls_pb2.WatchOperationsRequest(call_ids=[call_id]), 2, timeout=3)
    )
    await started(gateway, 1)
    n = op_notification(call_id, op)
    assert (await poster.post([n])).status_code == 202
    assert (await poster.post([n])).status_code == 202  # Graph redelivers
    marker = new_guid()
    await poster.post([op_notification(call_id, marker)])
    got = await watch
    assert [g.event.operation_update.operation.id for g in got] == [op, marker]


async def test_call_updates_and_other_only_when_asked(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Poster
) -> None:
    call_id = new_guid()
    participants = {
        "changeType": "updated",
        "resourceUrl": f"/communications/calls/{call_id}/participants",
        "resourceData": [{"@odata.type": "#microsoft.graph.participant", "id": "p1"}],
    }
    op = new_guid()
    everything = asyncio.create_task(
        collect(
            stub,
            calls_pb2.WatchOperationsRequest(
                call_ids=[call_id], include_call_updates=True, include_other=True
            ),
            3,
        )
    )
    ops_only = asyncio.create_task(
        collect(stub, calls_pb2.WatchOperationsRequest(call_ids=[call_id]), 1)
    )
    await started(gateway, 2)
    await poster.post(
        [call_notification(call_id, "established"), participants, op_notification(call_id, op)]
    )
    all_got = await everything
    assert [g.event.WhichOneof("kind") for g in all_got] == [
        "call_update",
        "other",
        "operation_update",
    ]
    assert all_got[0].event.call_update.state == calls_pb2.CALL_STATE_ESTABLISHED
    assert json.loads(all_got[1].event.other.raw_json)["resourceData"][0]["id"] == "p1"
    assert [g.event.operation_update.operation.id for g in await ops_only] == [op]


async def test_200_subscribers_with_different_filters_get_exactly_theirs(
    gateway: Gateway, channel: grpc.aio.Channel, poster: Poster
) -> None:
    stub = calls_pb2_grpc.CallsServiceStub(channel)
    calls = [new_guid() for _ in range(20)]
    # Each call gets 3 operations: two completed (ctx "a", "b") and one failed (ctx "a").
    plan: dict[str, list[tuple[str, str, str]]] = {
        c: [
            (new_guid(), "completed", "a"),
            (new_guid(), "completed", "b"),
            (new_guid(), "failed", "a"),
        ]
        for c in calls
    }
    requests: list[tuple[calls_pb2.WatchOperationsRequest, list[str]]] = []
    for i in range(200):
        c = calls[i % 20]
        mode = i // 20 % 5
        if mode == 0:
            req = calls_pb2.WatchOperationsRequest(call_ids=[c])
            want = [o for o, _, _ in plan[c]]
        elif mode == 1:
            req = calls_pb2.WatchOperationsRequest(
                call_ids=[c], statuses=[calls_pb2.OPERATION_STATUS_FAILED]
            )
            want = [o for o, s, _ in plan[c] if s == "failed"]
        elif mode == 2:
            req = calls_pb2.WatchOperationsRequest(call_ids=[c], client_context="b")
            want = [o for o, _, x in plan[c] if x == "b"]
        elif mode == 3:
            c2 = calls[(i + 1) % 20]
            req = calls_pb2.WatchOperationsRequest(call_ids=[c, c2], client_context="a")
            want = [o for cc in calls for o, _, x in plan[cc] if cc in (c, c2) and x == "a"]
        else:
            req = calls_pb2.WatchOperationsRequest(client_context="b")
            want = [o for cc in calls for o, _, x in plan[cc] if x == "b"]
        requests.append((req, want))
    streams = [stub.WatchOperations(r) for r, _ in requests]
    results: list[list[str]] = [[] for _ in streams]

    async def read(i: int) -> None:
        async for r in streams[i]:
            if r.WhichOneof("kind") == "event":
                results[i].append(r.event.operation_update.operation.id)

    readers = [asyncio.create_task(read(i)) for i in range(len(streams))]
    await started(gateway, 200)
    for c in calls:
        await poster.post([op_notification(c, o, status=s, ctx=x) for o, s, x in plan[c]])
    expected = [want for _, want in requests]
    await eventually(
        lambda: (
            results == expected
            or any(len(r) > len(w) for r, w in zip(results, expected, strict=True))
        ),
        interval=0.05,
        what="every subscriber has its events (or one has too many)",
    )
    for s in streams:
        s.cancel()
    for t in readers:
        t.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    assert results == expected


async def test_start_bookmark_lets_a_stream_lost_before_any_event_resume(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Poster
) -> None:
    call_id, op = new_guid(), new_guid()
    call = stub.WatchOperations(calls_pb2.WatchOperationsRequest(call_ids=[call_id]))
    first = await anext(call.__aiter__())
    assert first.WhichOneof("kind") == "bookmark"
    assert first.bookmark.kind == calls_pb2.BOOKMARK_KIND_START
    call.cancel()  # lost before any event
    await poster.post([op_notification(call_id, op)])  # happens while disconnected
    got = await collect(
        stub,
        calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=first.resume_token),
        1,
    )
    assert got[0].event.operation_update.operation.id == op
