"""Fault injection: the gateway's promises under failures the other tests do not cover.

A notification answered 202 reaches every matching subscriber that resumes with its token; a
cancel is either done or fails with a truthful status; the gateway stays up and serves normal
traffic afterwards. Faults: Graph behind a certificate the gateway does not trust, the token
endpoint down at start and when a refresh is due, a storm of mixed Graph failures against
concurrent cancels, the notification JWKS down, subscribers that never read, that drop the
connection mid-message or arrive 3,000 at once, webhook clients that vanish mid-body, a replica
SIGKILLed mid-fan-out and Redis restarted without persistence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import random
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from commsgw.emulator import Emulator, EmulatorConfig, Fault
from commsgw.server._gateway import Gateway
from commsgw.testing import GatewayProcess
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.emulator import CANCEL_PATH, TOKEN_PATH, GraphUser, fired
from helpers.gateway import gateway_settings, process_env, rss_kb, webhook_url
from helpers.ids import new_guid
from helpers.metrics import metric
from helpers.notifications import TENANT, Poster, op_notification
from helpers.polling import eventually
from helpers.private_redis import PrivateRedis
from helpers.shared_redis import SHARED_REDIS, key_prefix
from helpers.status import error_details

pytestmark = pytest.mark.e2e

JWKS_PATHS = r"/v1/\.well-known/(keys|OpenIdConfiguration)$"


async def cancel(gw: Gateway, call_id: str, **kwargs: Any) -> Any:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
        return await calls_pb2_grpc.CallsServiceStub(ch).CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(call_id=call_id),
            timeout=kwargs.pop("timeout", 10),
            **kwargs,
        )


async def cancel_error(gw: Gateway, call_id: str, **kwargs: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await cancel(gw, call_id, **kwargs)
    return info.value


async def notification_round_trip(emulator: Emulator, gw: Gateway) -> None:
    """The webhook stores a signed notification and a watcher that resumes gets it."""
    call_id, op = new_guid(), new_guid()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        call = stub.WatchOperations(
            calls_pb2.WatchOperationsRequest(call_ids=[call_id], include_snapshot=True)
        )
        first = await call.read()
        assert first.bookmark.kind == calls_pb2.BOOKMARK_KIND_SNAPSHOT_END
        async with Poster(emulator, gw) as poster:
            assert (await poster.post([op_notification(call_id, op)])).status_code == 202
        got = await asyncio.wait_for(call.read(), 10)
        call.cancel()
    assert got.event.operation_update.operation.id == op


# --- Graph and the token authority ---------------------------------------------------------


@pytest.mark.parametrize("sender", ["aiohttp", "httpx"])  # COMMSGW_GRAPH_HTTP_TRANSPORT
async def test_graph_behind_an_untrusted_certificate_is_unavailable(
    emulator: Emulator, tmp_path: pathlib.Path, sender: str
) -> None:
    # A second emulator has its own CA, which the gateway (trusting the first one's) does not.
    other = Emulator(EmulatorConfig(port=0, state_dir=tmp_path / "other"))
    await other.start()
    gw = Gateway(
        gateway_settings(
            emulator, COMMSGW_GRAPH_URL=other.graph_url, COMMSGW_GRAPH_HTTP_TRANSPORT=sender
        )
    )
    await gw.start()
    try:
        err = await cancel_error(gw, new_guid())
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(err)[0].reason == "GRAPH_UNREACHABLE"
        assert "certificate" in (err.details() or "").lower()
        assert not other.requests_to(CANCEL_PATH)  # the handshake failed: nothing was sent
        await notification_round_trip(emulator, gw)  # the rest of the gateway is unaffected
    finally:
        await gw.stop(0)
        await other.stop()


async def test_token_authority_behind_an_untrusted_certificate(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    other = Emulator(EmulatorConfig(port=0, state_dir=tmp_path / "other"))
    await other.start()
    gw = Gateway(gateway_settings(emulator, COMMSGW_AUTHORITY_HOST=other.base_url))
    await gw.start()
    try:
        err = await cancel_error(gw, new_guid())
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_details(err)[0].reason == "TOKEN_ACQUISITION_FAILED"
        assert not emulator.requests_to(CANCEL_PATH)
        assert not gw.ready
    finally:
        await gw.stop(0)
        await other.stop()


async def test_token_endpoint_down_at_start_then_up(
    emulator: Emulator, graph_user: GraphUser
) -> None:
    fid = emulator.faults.add(Fault(path_pattern=TOKEN_PATH, status=500, count=-1))
    gw = Gateway(gateway_settings(emulator))
    await gw.start()
    try:
        call_id = await graph_user.create_call(webhook_url(gw))
        await graph_user.play_prompt(call_id, "p")
        err = await cancel_error(gw, call_id)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_details(err)[0].reason == "TOKEN_ACQUISITION_FAILED"
        assert not emulator.requests_to(CANCEL_PATH)  # refused before Graph
        assert not gw.ready
        assert fired(emulator, TOKEN_PATH)
        emulator.faults.remove(fid)
        await eventually(lambda: gw.ready, interval=0.1, what="ready once the authority is up")
        resp = await cancel(gw, call_id)
        assert resp.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
    finally:
        await gw.stop(0)


async def test_token_endpoint_down_when_a_refresh_is_due(tmp_path: pathlib.Path) -> None:
    # Tokens that live 2 s: the gateway must go back to the authority mid-run.
    emu = Emulator(EmulatorConfig(port=0, state_dir=tmp_path / "emu", token_lifetime_s=2))
    await emu.start()
    user = GraphUser(emu)
    gw = Gateway(gateway_settings(emu))
    await gw.start()
    try:
        call_id = await user.create_call(webhook_url(gw))
        assert (await cancel(gw, call_id)).operation.id
        # MSAL keeps an authority's 503 for its integral Retry-After.
        fid = emu.faults.add(Fault(path_pattern=TOKEN_PATH, status=503, retry_after=1, count=-1))
        # Waiting for the token (and MSAL's copy) to expire is what this test is about.
        await asyncio.sleep(2.5)
        sent = len(emu.requests_to(CANCEL_PATH))
        err = await cancel_error(gw, call_id)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_details(err)[0].reason == "TOKEN_ACQUISITION_FAILED"
        assert len(emu.requests_to(CANCEL_PATH)) == sent  # no expired token sent to Graph
        assert fired(emu, TOKEN_PATH)  # the refresh did meet the authority's 503
        emu.faults.remove(fid)

        async def cancelled() -> bool:
            await cancel(gw, call_id)
            return True

        # Back without a restart once the authority is.
        await eventually(cancelled, interval=0.5, ignoring=(grpc.aio.AioRpcError,))
        assert (await cancel(gw, call_id)).operation.id  # back to normal
    finally:
        await gw.stop(0)
        await user.aclose()
        await emu.stop()


@pytest.mark.parametrize("sender", ["aiohttp", "httpx"])  # COMMSGW_GRAPH_HTTP_TRANSPORT
async def test_storm_of_graph_failures_every_cancel_truthful(
    emulator: Emulator, graph_user: GraphUser, sender: str
) -> None:
    gw = Gateway(
        gateway_settings(
            emulator,
            COMMSGW_GRAPH_HTTP_TRANSPORT=sender,
            COMMSGW_GRAPH_CONCURRENCY="4",
            COMMSGW_GRAPH_MAX_ATTEMPTS="3",
            COMMSGW_RETRY_MAX_S="0.3",
        )
    )
    await gw.start()
    try:
        calls = [await graph_user.create_call(webhook_url(gw)) for _ in range(60)]
        await gw.tokens.warm()
        rnd = random.Random(8)
        kinds = [
            {"status": 429, "retry_after": 0.1, "error_code": "activityLimitReached"},
            {"status": 429},
            {"status": 503, "retry_after": 0.1},
            {"status": 503},
            {"status": 500},
            {"reset_connection": True},
            {"delay_s": 0.5, "passthrough": True},
            {"delay_s": 6.0, "passthrough": True},
        ]
        for _ in range(80):
            emulator.faults.add(Fault(path_pattern=CANCEL_PATH, **rnd.choice(kinds)))
        crids = [new_guid() for _ in calls]

        async def one(call_id: str, crid: str) -> grpc.StatusCode:
            try:
                await cancel(gw, call_id, timeout=5, metadata=(("x-client-request-id", crid),))
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    assert error_details(err)[0].metadata["client_request_id"] == crid
                return err.code()
            return grpc.StatusCode.OK

        codes = await asyncio.gather(*(one(c, r) for c, r in zip(calls, crids, strict=True)))

        def all_answered_at_graph() -> bool:
            # Stalled requests that reached Graph finish there (logged once answered).
            logged = [
                r for r in emulator.requests_to(CANCEL_PATH) if "x-emulator-fault" in r.headers
            ]
            return len(logged) == len(fired(emulator, CANCEL_PATH))

        await eventually(all_answered_at_graph, timeout=20, interval=0.1)
        done_at_graph = {
            r.headers.get("client-request-id")
            for r in emulator.requests_to(CANCEL_PATH)
            if 200 <= r.status < 300
        }
        allowed = {
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.INTERNAL,
        }
        for crid, code in zip(crids, codes, strict=True):
            if code == grpc.StatusCode.OK:
                assert crid in done_at_graph  # reported done: it was done
            elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
                pass  # the one ambiguous answer: it may or may not have reached Graph
            else:
                assert code in allowed, code
                assert crid not in done_at_graph  # reported failed: it was not done
        assert grpc.StatusCode.OK in codes
        emulator.faults.clear()
        # No Graph slot leaked by the failures: a burst larger than the concurrency works.
        await asyncio.wait_for(asyncio.gather(*(cancel(gw, c) for c in calls[:12])), 10)
    finally:
        await gw.stop(0)


# --- the notification keys (JWKS) -----------------------------------------------------------


async def warm_notification_keys(gw: Gateway) -> None:
    """Load the notification keys the way start-up or a health check would. Loaded instead by
    a first notification, they count as the fetch for an unknown kid, and the next unknown kid
    within unknown_kid_min_interval_s (30 s) would be refused without a fetch at all."""
    await gw.webhook._validator.warm()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "fault",
    [{"status": 503}, {"status": 500}, {"reset_connection": True}, {"status": 404}],
    ids=["503", "500", "reset", "404"],
)
async def test_jwks_down_cached_keys_keep_working_unknown_kid_is_401(
    emulator: Emulator, fault: dict[str, Any]
) -> None:
    gw = Gateway(gateway_settings(emulator))
    await gw.start()
    async with Poster(emulator, gw) as poster:
        try:
            await warm_notification_keys(gw)
            assert (await poster.post([op_notification(new_guid(), new_guid())])).status_code == 202
            emulator.faults.add(Fault(path_pattern=JWKS_PATHS, count=-1, **fault))
            await notification_round_trip(emulator, gw)  # cached keys keep working
            r = await poster.post([op_notification(new_guid(), new_guid())], token=poster.token())
            assert r.status_code == 202
            r = await poster.post(
                [op_notification(new_guid(), new_guid())], token=poster.token(kid="never-seen")
            )
            assert r.status_code == 401
            assert fired(emulator, JWKS_PATHS)  # the unknown kid's fetch found the JWKS down
            emulator.rotate_notification_key(keep_old=False)  # Graph rotates while JWKS is down
            codes = await asyncio.gather(
                *(poster.post([op_notification(new_guid(), new_guid())]) for _ in range(20))
            )
            assert {c.status_code for c in codes} == {401}  # refused, Graph redelivers; no 500
            assert any(r.path.endswith("/keys") or "OpenId" in r.path for r in emulator.request_log)
        finally:
            await gw.stop(0)


async def test_jwks_stalled_on_an_unknown_kid_does_not_block_known_keys(
    emulator: Emulator,
) -> None:
    gw = Gateway(gateway_settings(emulator, COMMSGW_GRAPH_TIMEOUT_S="3"))
    await gw.start()
    async with Poster(emulator, gw) as poster:
        try:
            await warm_notification_keys(gw)
            assert (await poster.post([op_notification(new_guid(), new_guid())])).status_code == 202
            emulator.faults.add(
                Fault(path_pattern=JWKS_PATHS, delay_s=2, passthrough=True, count=-1)
            )
            stalled = asyncio.create_task(
                poster.post(
                    [op_notification(new_guid(), new_guid())], token=poster.token(kid="new")
                )
            )
            # The unknown kid's fetch is stalled at the JWKS.
            await eventually(lambda: fired(emulator, JWKS_PATHS), what="the JWKS fetch stalls")
            t0 = time.monotonic()
            r = await poster.post([op_notification(new_guid(), new_guid())])
            assert r.status_code == 202
            assert time.monotonic() - t0 < 1  # a known key does not wait for the fetch
            assert (await stalled).status_code == 401
        finally:
            await gw.stop(0)


# --- subscribers ----------------------------------------------------------------------------


async def read_all(
    target: str, req: calls_pb2.WatchOperationsRequest, n: int, timeout: float = 30
) -> tuple[list[str], int]:
    """Read `n` events, resuming from the last token after each cut; (ids, resumes)."""
    ids: list[str] = []
    cuts = 0
    token = req.resume_token
    async with grpc.aio.insecure_channel(target) as ch, asyncio.timeout(timeout):
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        while len(ids) < n:
            r2 = calls_pb2.WatchOperationsRequest()
            r2.CopyFrom(req)
            r2.resume_token = token
            call = stub.WatchOperations(r2)
            try:
                async for r in call:
                    token = r.resume_token
                    if r.WhichOneof("kind") == "event":
                        ids.append(r.event.operation_update.operation.id)
                        if len(ids) >= n:
                            break
            except grpc.aio.AioRpcError as err:
                assert err.code() in (
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    grpc.StatusCode.UNAVAILABLE,
                ), err
                cuts += 1
            finally:
                call.cancel()
    return ids, cuts


async def snapshot_token(stub: calls_pb2_grpc.CallsServiceStub, **req: Any) -> str:
    call = stub.WatchOperations(calls_pb2.WatchOperationsRequest(include_snapshot=True, **req))
    try:
        async for r in call:
            if r.bookmark.kind == calls_pb2.BOOKMARK_KIND_SNAPSHOT_END:
                return str(r.resume_token)
    finally:
        call.cancel()
    raise AssertionError("no snapshot end")


async def test_subscriber_that_never_reads(emulator: Emulator) -> None:
    gw = Gateway(gateway_settings(emulator, COMMSGW_SUBSCRIBER_BUFFER="50"))
    await gw.start()
    async with Poster(emulator, gw) as poster:
        target = f"127.0.0.1:{gw.grpc_port}"
        call_id = new_guid()
        ops = [new_guid() for _ in range(600)]
        try:
            async with grpc.aio.insecure_channel(target) as ch:
                stub = calls_pb2_grpc.CallsServiceStub(ch)
                token = await snapshot_token(stub, call_ids=[call_id])
                # Opened and never read; big events (8 KB each) fill the HTTP/2 windows at once.
                idle = stub.WatchOperations(
                    calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=token)
                )
                await idle.wait_for_connection()
                reader = asyncio.create_task(
                    read_all(
                        target,
                        calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=token),
                        len(ops),
                    )
                )
                pad = "p" * 8000
                t0 = time.monotonic()
                for i in range(0, len(ops), 20):
                    batch = [op_notification(call_id, o, ctx=pad) for o in ops[i : i + 20]]
                    assert (await poster.post(batch)).status_code == 202
                # Ingestion is not slowed by the idle subscriber, nor is the reading one.
                assert time.monotonic() - t0 < 10
                got, _ = await reader
                assert got == ops
                # Memory stays bounded: its buffer was dropped when it overflowed.
                assert sum(len(s.queue) for s in gw.hub._everything) == 0
                assert all(len(s.queue) <= 50 for v in gw.hub._by_call.values() for s in v)
                # When it finally reads, it is told it was too slow, and resuming loses nothing.
                seen: list[str] = []
                last = token
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for r in idle:
                        last = r.resume_token
                        if r.WhichOneof("kind") == "event":
                            seen.append(r.event.operation_update.operation.id)
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert error_details(info.value)[0].reason == "SUBSCRIBER_TOO_SLOW"
                rest, _ = await read_all(
                    target,
                    calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=last),
                    len(ops) - len(seen),
                )
                assert seen + rest == ops
        finally:
            await gw.stop(0)


class CuttingProxy:
    """A TCP proxy that passes the client's bytes through and, once the server has sent
    `cut_after` bytes, forwards half of the next chunk and drops both connections: a
    subscriber that vanishes in the middle of a message."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def up() -> None:
            with contextlib.suppress(OSError):
                while data := await cr.read(65536):
                    uw.write(data)
                    await uw.drain()

        async def down() -> None:
            sent = 0
            with contextlib.suppress(OSError):
                while data := await ur.read(65536):
                    if sent + len(data) > self.cut_after:
                        cw.write(data[: max(1, len(data) // 2)])
                        await cw.drain()
                        self.cuts += 1
                        break
                    cw.write(data)
                    await cw.drain()
                    sent += len(data)
            for w in (cw, uw):
                w.transport.abort()

        tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        for w in (cw, uw):
            w.transport.abort()


async def test_subscribers_that_disconnect_mid_message(emulator: Emulator) -> None:
    gw = Gateway(gateway_settings(emulator))
    await gw.start()
    async with Poster(emulator, gw) as poster:
        target = f"127.0.0.1:{gw.grpc_port}"
        call_id = new_guid()
        ops = [new_guid() for _ in range(40)]
        pad = "m" * 30_000  # each event spans several TCP reads
        try:
            async with grpc.aio.insecure_channel(target) as ch:
                token = await snapshot_token(
                    calls_pb2_grpc.CallsServiceStub(ch), call_ids=[call_id]
                )
            for i in range(0, len(ops), 10):
                batch = [op_notification(call_id, o, ctx=pad) for o in ops[i : i + 10]]
                assert (await poster.post(batch)).status_code == 202
            before = gw.limits.open
            async with CuttingProxy(gw.grpc_port, cut_after=40_000) as proxy:
                for _ in range(15):
                    async with grpc.aio.insecure_channel(f"127.0.0.1:{proxy.port}") as ch:
                        call = calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(
                            calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=token)
                        )
                        with pytest.raises(grpc.aio.AioRpcError):
                            async for _ in call:
                                pass
                assert proxy.cuts >= 15
            # The gateway let go of every cut stream: no subscription, no stream slot left.
            await eventually(
                lambda: not gw.hub.subscribers and gw.limits.open == before, interval=0.05
            )
            got, _ = await read_all(
                target,
                calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=token),
                len(ops),
            )
            assert got == ops
        finally:
            await gw.stop(0)


async def test_webhook_clients_that_vanish_mid_body(emulator: Emulator) -> None:
    gw = Gateway(gateway_settings(emulator))
    await gw.start()
    try:
        token = emulator.mint_notification_token(tenant_id=TENANT)
        body = json.dumps({"value": [op_notification(new_guid(), new_guid())]}).encode()
        head = gw.hub.head
        for i in range(30):
            _r, w = await asyncio.open_connection("127.0.0.1", gw.http_port)
            w.write(
                b"POST /api/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body[: (len(body) * i) // 30]
            )
            await w.drain()
            w.transport.abort()
        # A whole notification after them, as a marker: once it is through, it is the only
        # entry stored since; nothing half-received was.
        await notification_round_trip(emulator, gw)
        assert len(await gw.log.read_range(head, (2**62, 0), 100)) == 1
    finally:
        await gw.stop(0)


async def test_3000_subscribers_connect_at_once(emulator: Emulator, tmp_path: pathlib.Path) -> None:
    proc = GatewayProcess(
        process_env(emulator, COMMSGW_LOG_LEVEL="WARNING"), str(tmp_path / "gw.log")
    )
    await proc.start()
    call_id = new_guid()
    ops = [new_guid() for _ in range(3)]
    # Above gRPC core's default pending-call limits (1,000 soft, 3,000 hard), which cancelled
    # streams of a burst before the gateway raised them.
    n_channels, per_channel = 30, 100
    channels = [grpc.aio.insecure_channel(proc.target) for _ in range(n_channels)]
    http = httpx.AsyncClient()
    try:
        rss_before = rss_kb(proc.proc.pid)  # type: ignore[union-attr]
        calls = [
            calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(
                calls_pb2.WatchOperationsRequest(
                    call_ids=[call_id] if i % 2 else [], include_snapshot=True
                )
            )
            for ch in channels
            for i in range(per_channel)
        ]

        async def first(call: Any) -> int:
            r = await call.read()
            return int(r.bookmark.kind)

        kinds = await asyncio.wait_for(asyncio.gather(*(first(c) for c in calls)), 60)
        assert set(kinds) == {calls_pb2.BOOKMARK_KIND_SNAPSHOT_END}
        page = (await http.get(f"http://127.0.0.1:{proc.http_port}/metrics")).text
        assert metric(page, "commsgw_subscribers") == n_channels * per_channel
        token = emulator.mint_notification_token(tenant_id=TENANT)
        r = await http.post(
            proc.webhook,
            content=json.dumps({"value": [op_notification(call_id, o) for o in ops]}),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 202

        async def events(call: Any) -> list[str]:
            out: list[str] = []
            while (m := await call.read()) is not grpc.aio.EOF:
                if m.WhichOneof("kind") == "event":
                    out.append(m.event.operation_update.operation.id)
                    if len(out) == len(ops):
                        return out
            return out

        got = await asyncio.wait_for(asyncio.gather(*(events(c) for c in calls)), 60)
        assert all(g == ops for g in got)
        for c in calls:
            c.cancel()

        async def no_subscribers() -> bool:
            page = (await http.get(f"http://127.0.0.1:{proc.http_port}/metrics")).text
            return metric(page, "commsgw_subscribers") == 0

        await eventually(no_subscribers, timeout=20, interval=0.2)
        assert proc.proc is not None and proc.proc.poll() is None
        assert rss_kb(proc.proc.pid) - rss_before < 100 * 1024
    finally:
        await http.aclose()
        for ch in channels:
            await ch.close()
        proc.kill()


# --- replicas and Redis ---------------------------------------------------------------------

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis")


class Sub:
    """A subscriber that resumes with its last token on whichever replica it is given."""

    def __init__(self, call_ids: Sequence[str]) -> None:
        self.call_ids = list(call_ids)
        self.ids: list[str] = []
        self.token = ""
        self.errors: list[grpc.StatusCode] = []

    async def run(self, targets: Sequence[str], until: int, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while len(self.ids) < until:
                for target in targets:
                    if len(self.ids) >= until:
                        return
                    async with grpc.aio.insecure_channel(target) as ch:
                        req = calls_pb2.WatchOperationsRequest(
                            call_ids=self.call_ids,
                            tenant_ids=[TENANT],
                            resume_token=self.token,
                            include_snapshot=not self.token,
                        )
                        call = calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(req)
                        try:
                            async for r in call:
                                self.token = r.resume_token
                                if r.WhichOneof("kind") == "event":
                                    self.ids.append(r.event.operation_update.operation.id)
                                    if len(self.ids) >= until:
                                        return
                        except grpc.aio.AioRpcError as err:
                            self.errors.append(err.code())
                            assert err.code() in (
                                grpc.StatusCode.UNAVAILABLE,
                                grpc.StatusCode.RESOURCE_EXHAUSTED,
                            ), err
                        finally:
                            call.cancel()
                    await asyncio.sleep(0.1)  # a client's pause before it reconnects


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    async with key_prefix("faults") as prefix:
        yield prefix


@needs_redis
async def test_replica_sigkilled_mid_fan_out(
    emulator: Emulator, tmp_path: pathlib.Path, redis_prefix: str
) -> None:
    env = process_env(
        emulator,
        COMMSGW_EVENT_LOG=SHARED_REDIS,
        COMMSGW_EVENT_LOG_KEY=redis_prefix,
        COMMSGW_BOOKMARK_INTERVAL_S="1",
        COMMSGW_LOG_LEVEL="WARNING",
    )
    a = GatewayProcess(env, str(tmp_path / "a.log"))
    b = GatewayProcess(env, str(tmp_path / "b.log"))
    await asyncio.gather(a.start(), b.start())
    calls = [new_guid() for _ in range(4)]
    subs = [Sub([calls[i % 4]]) for i in range(40)] + [Sub([]) for _ in range(10)]
    posts = 150
    plan = [(calls[i % 4], [new_guid() for _ in range(4)]) for i in range(posts)]
    expected_all = [o for _, ops in plan for o in ops]
    expected = {c: [o for call, ops in plan if call == c for o in ops] for c in calls}
    http = httpx.AsyncClient()
    try:
        # Every subscriber starts on B (the one that dies) and fails over to A.
        runs = [
            asyncio.create_task(
                s.run(
                    [b.target, a.target],
                    len(expected[s.call_ids[0]]) if s.call_ids else len(expected_all),
                )
            )
            for s in subs
        ]
        await eventually(lambda: all(s.token for s in subs), timeout=20, interval=0.05)
        token = emulator.mint_notification_token(tenant_id=TENANT)
        for i, (call_id, ops) in enumerate(plan):
            if i == posts // 3:
                b.kill()  # SIGKILL while it fans out
            r = await http.post(
                a.webhook,
                content=json.dumps({"value": [op_notification(call_id, o) for o in ops]}),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 202
        await asyncio.gather(*runs)
        for s in subs:
            want = expected[s.call_ids[0]] if s.call_ids else expected_all
            assert s.ids == want  # in order, none missing, none twice
        assert any(s.errors for s in subs)  # they did lose B mid-stream
    finally:
        await http.aclose()
        a.kill()
        b.kill()


@needs_redis
async def test_redis_restarted_without_persistence_is_told_not_skipped(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    redis = PrivateRedis(tmp_path)
    await redis.start()
    env = process_env(
        emulator,
        COMMSGW_EVENT_LOG=redis.url,
        COMMSGW_BOOKMARK_INTERVAL_S="0.5",
        COMMSGW_LOG_LEVEL="WARNING",
    )
    gw = GatewayProcess(env, str(tmp_path / "gw.log"))
    await gw.start()
    http = httpx.AsyncClient()
    call_id = new_guid()

    async def post(ops: Sequence[str]) -> int:
        token = emulator.mint_notification_token(tenant_id=TENANT)
        r = await http.post(
            gw.webhook,
            content=json.dumps({"value": [op_notification(call_id, o) for o in ops]}),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        return r.status_code

    try:
        sub = Sub([call_id])
        first = [new_guid() for _ in range(5)]
        reading = asyncio.create_task(sub.run([gw.target], until=5))
        await eventually(lambda: sub.token, interval=0.05, what="subscribed")
        assert await post(first) == 202
        await reading
        assert sub.ids == first
        # Redis restarted with an empty data set (its append-only file removed).
        redis.stop()
        shutil.rmtree(redis.dir)
        redis.dir.mkdir()
        assert await post([new_guid()]) == 503  # refused while down, not answered 202
        await redis.start()
        later: list[str] = []

        async def stored() -> bool:
            later[:] = [new_guid()]
            status = await post(later)
            assert status in (202, 503), status
            return status == 202

        await eventually(stored, timeout=20, interval=0.2, what="a POST is stored again")
        # The old token cannot be resumed into a new log: it is said, not silently skipped.
        # (UNAVAILABLE while its reader reconnects: clients retry that.)
        async with grpc.aio.insecure_channel(gw.target) as ch:

            async def resume_refused() -> grpc.aio.AioRpcError | None:
                call = calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(
                    calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=sub.token)
                )
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _ in call:
                        pass
                return None if info.value.code() == grpc.StatusCode.UNAVAILABLE else info.value

            err = await eventually(resume_refused, timeout=20, interval=0.2)
        assert err.code() == grpc.StatusCode.OUT_OF_RANGE
        assert error_details(err)[0].reason == "RESUME_TOKEN_EXPIRED"
        # A fresh subscription with a snapshot sees what the new log holds.
        fresh = Sub([call_id])
        await fresh.run([gw.target], until=1, timeout=10)
        assert fresh.ids == later
        assert gw.proc is not None and gw.proc.poll() is None
        probe = health_pb2.HealthCheckRequest(service="")
        async with grpc.aio.insecure_channel(gw.target) as ch:
            status = (await health_pb2_grpc.HealthStub(ch).Check(probe)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await http.aclose()
        gw.kill()
        redis.stop()
