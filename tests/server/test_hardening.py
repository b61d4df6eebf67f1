"""Production hardening: TLS and mTLS, caller permissions, recording tokens, health, metrics,
limits, graceful drain of a real process on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from commsgw.emulator import Emulator, Fault
from commsgw.server._gateway import Gateway
from commsgw.testing import GatewayProcess
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.callers import OTHER_TENANT, bearer, callers_file
from helpers.certs import make_ca, make_leaf
from helpers.emulator import CANCEL_PATH, TOKEN_PATH, GraphUser, fired
from helpers.gateway import gateway_settings, process_env, running_gateway, webhook_url
from helpers.ids import new_guid
from helpers.metrics import metric
from helpers.notifications import TENANT, Poster
from helpers.polling import eventually
from helpers.status import error_details
from helpers.watch import collect, started

pytestmark = pytest.mark.e2e


@pytest.fixture
async def secured(emulator: Emulator, tmp_path: pathlib.Path) -> AsyncIterator[Gateway]:
    async with running_gateway(
        gateway_settings(
            emulator,
            COMMSGW_CALLERS_FILE=str(callers_file(tmp_path)),
            COMMSGW_EXTRA_TENANTS=OTHER_TENANT,
        )
    ) as gw:
        yield gw


@pytest.fixture
async def sstub(secured: Gateway) -> AsyncIterator[calls_pb2_grpc.CallsServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.grpc_port}") as ch:
        yield calls_pb2_grpc.CallsServiceStub(ch)


async def code_of(coro: Any) -> grpc.StatusCode:
    try:
        await coro
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def watch_code(stub: calls_pb2_grpc.CallsServiceStub, md: Any, **req: Any) -> Any:
    """The error a new watch fails with, or OK once it is admitted: an admitted stream's
    first message is a bookmark (START), sent before any event."""
    call = stub.WatchOperations(calls_pb2.WatchOperationsRequest(**req), metadata=md)
    try:
        first = await asyncio.wait_for(call.read(), 10)
    except grpc.aio.AioRpcError as err:
        return err
    finally:
        call.cancel()
    assert first is not grpc.aio.EOF and first.WhichOneof("kind") == "bookmark", first
    return grpc.StatusCode.OK


async def test_permissions_unary(
    emulator: Emulator,
    secured: Gateway,
    sstub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    call_id = await graph_user.create_call(webhook_url(secured))
    req = calls_pb2.CancelMediaProcessingRequest(call_id=call_id)
    assert await code_of(sstub.CancelMediaProcessing(req)) == grpc.StatusCode.UNAUTHENTICATED
    bad = (("authorization", "Bearer nope"),)
    assert await code_of(sstub.CancelMediaProcessing(req, metadata=bad)) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    basic = (("authorization", "Basic abc"),)
    assert await code_of(sstub.CancelMediaProcessing(req, metadata=basic)) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert await code_of(sstub.CancelMediaProcessing(req, metadata=bearer("watcher"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    other = calls_pb2.CancelMediaProcessingRequest(call_id=call_id, tenant_id=TENANT)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await sstub.CancelMediaProcessing(other, metadata=bearer("other-tenant"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(info.value)[0].reason == "TENANT_NOT_PERMITTED"
    assert not emulator.requests_to(CANCEL_PATH), "a refused caller reached Graph"
    assert await code_of(sstub.CancelMediaProcessing(req, metadata=bearer("canceller"))) == (
        grpc.StatusCode.OK
    )
    assert len(emulator.requests_to(CANCEL_PATH)) == 1


async def test_permissions_streaming(
    secured: Gateway, sstub: calls_pb2_grpc.CallsServiceStub
) -> None:
    err = await watch_code(sstub, ())
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    err = await watch_code(sstub, bearer("canceller"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await watch_code(sstub, bearer("watcher")) == grpc.StatusCode.OK
    err = await watch_code(sstub, bearer("other-tenant"), tenant_ids=[TENANT])
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(err)[0].reason == "TENANT_NOT_PERMITTED"
    assert await watch_code(sstub, bearer("other-tenant")) == grpc.StatusCode.OK


def record_done(call_id: str, op_id: str, secret: str) -> dict[str, Any]:
    return {
        "changeType": "deleted",
        "resourceUrl": f"/communications/calls/{call_id}/operations/{op_id}",
        "resourceData": {
            "@odata.type": "#microsoft.graph.recordOperation",
            "id": op_id,
            "status": "completed",
            "resultInfo": {"code": 200, "subcode": 8515, "message": "max duration"},
            "recordingLocation": "https://media.example/rec.wav",
            "recordingAccessToken": secret,
            "completionReason": "maxRecordDurationReached",
        },
    }


async def test_recording_token_only_for_recordings_read(
    emulator: Emulator, secured: Gateway, sstub: calls_pb2_grpc.CallsServiceStub
) -> None:
    call_id, op = new_guid(), new_guid()
    watcher = asyncio.create_task(
        collect_md(sstub, calls_pb2.WatchOperationsRequest(call_ids=[call_id]), bearer("watcher"))
    )
    recorder = asyncio.create_task(
        collect_md(sstub, calls_pb2.WatchOperationsRequest(call_ids=[call_id]), bearer("recorder"))
    )
    await started(secured, 2)
    async with Poster(emulator, secured) as poster:
        assert (await poster.post([record_done(call_id, op, "rec-secret-42")])).status_code == 202
    w, r = await watcher, await recorder
    wop = w.event.operation_update.operation
    rop = r.event.operation_update.operation
    assert rop.recording_access_token == "rec-secret-42"
    assert wop.recording_access_token == ""
    assert wop.recording_location == rop.recording_location == "https://media.example/rec.wav"


async def collect_md(
    stub: calls_pb2_grpc.CallsServiceStub, req: calls_pb2.WatchOperationsRequest, md: Any
) -> calls_pb2.WatchOperationsResponse:
    call = stub.WatchOperations(req, metadata=md)
    async with asyncio.timeout(10):
        async for r in call:
            if r.WhichOneof("kind") == "event":
                call.cancel()
                return r
    raise AssertionError("no event")


async def test_tls_and_mutual_tls(emulator: Emulator, tmp_path: pathlib.Path) -> None:
    server_ca, server_ca_cert, server_ca_key = make_ca("test server CA")
    client_ca, client_ca_cert, client_ca_key = make_ca("test client CA")
    cert, key = make_leaf(server_ca_cert, server_ca_key, "gateway", server=True).write(
        tmp_path, "server"
    )
    (tmp_path / "client-ca.pem").write_bytes(client_ca.cert)
    good = make_leaf(client_ca_cert, client_ca_key, "svc-mtls.internal", server=False)
    unknown = make_leaf(client_ca_cert, client_ca_key, "stranger.internal", server=False)
    _, rogue_cert, rogue_key = make_ca("rogue CA")
    rogue = make_leaf(rogue_cert, rogue_key, "svc-mtls.internal", server=False)

    # TLS only.
    async with running_gateway(
        gateway_settings(emulator, COMMSGW_GRPC_TLS_CERT=str(cert), COMMSGW_GRPC_TLS_KEY=str(key))
    ) as gw:
        creds = grpc.ssl_channel_credentials(root_certificates=server_ca.cert)
        async with grpc.aio.secure_channel(f"localhost:{gw.grpc_port}", creds) as ch:
            resp = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            assert (
                await code_of(
                    health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
                )
                == grpc.StatusCode.UNAVAILABLE
            )

    # Mutual TLS: the certificate is the identity.
    async with running_gateway(
        gateway_settings(
            emulator,
            COMMSGW_GRPC_TLS_CERT=str(cert),
            COMMSGW_GRPC_TLS_KEY=str(key),
            COMMSGW_GRPC_CLIENT_CA=str(tmp_path / "client-ca.pem"),
            COMMSGW_CALLERS_FILE=str(callers_file(tmp_path)),
        )
    ) as gw:
        target = f"localhost:{gw.grpc_port}"

        async def try_watch(client: Any) -> Any:
            kw = {"private_key": client.key, "certificate_chain": client.cert} if client else {}
            creds = grpc.ssl_channel_credentials(root_certificates=server_ca.cert, **kw)
            async with grpc.aio.secure_channel(target, creds) as ch:
                return await watch_code(calls_pb2_grpc.CallsServiceStub(ch), ())

        assert await try_watch(good) == grpc.StatusCode.OK
        assert (await try_watch(unknown)).code() == grpc.StatusCode.UNAUTHENTICATED
        assert (await try_watch(None)).code() == grpc.StatusCode.UNAVAILABLE  # no client cert
        assert (await try_watch(rogue)).code() == grpc.StatusCode.UNAVAILABLE  # untrusted CA


async def test_webhook_over_https(emulator: Emulator, tmp_path: pathlib.Path) -> None:
    ca, ca_cert, ca_key = make_ca("webhook CA")
    cert, key = make_leaf(ca_cert, ca_key, "gateway", server=True).write(tmp_path, "web")
    async with running_gateway(
        gateway_settings(emulator, COMMSGW_HTTP_TLS_CERT=str(cert), COMMSGW_HTTP_TLS_KEY=str(key))
    ) as gw:
        (tmp_path / "ca.pem").write_bytes(ca.cert)
        import ssl

        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with httpx.AsyncClient(verify=ctx) as http:
            r = await http.get(f"https://127.0.0.1:{gw.http_port}/healthz")
            assert r.status_code == 200


async def test_health_follows_graph_credentials(emulator: Emulator) -> None:
    emulator.faults.add(Fault(path_pattern=TOKEN_PATH, status=500, count=-1))
    async with (
        running_gateway(gateway_settings(emulator)) as gw,
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch,
        httpx.AsyncClient() as http,
    ):
        health = health_pb2_grpc.HealthStub(ch)
        service = "graphcomms.v1.CallsService"

        async def status() -> int:
            r = await health.Check(health_pb2.HealthCheckRequest(service=service))
            return int(r.status)

        assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING
        assert fired(emulator, TOKEN_PATH)  # the authority did refuse
        assert (await http.get(f"http://127.0.0.1:{gw.http_port}/readyz")).status_code == 503
        assert (await http.get(f"http://127.0.0.1:{gw.http_port}/healthz")).status_code == 200
        emulator.faults.clear()

        async def serving() -> bool:
            return await status() == health_pb2.HealthCheckResponse.SERVING

        await eventually(serving, interval=0.1)
        assert (await http.get(f"http://127.0.0.1:{gw.http_port}/readyz")).status_code == 200


async def test_metrics_move_with_traffic(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    url = f"http://127.0.0.1:{gateway.http_port}/metrics"
    async with httpx.AsyncClient() as http:
        before = (await http.get(url)).text
        call_id = await graph_user.create_call(webhook_url(gateway))
        watch = asyncio.create_task(
            collect(
                stub,
                calls_pb2.WatchOperationsRequest(call_ids=[call_id], include_call_updates=True),
                1,
            )
        )
        # The call's own updates, which the emulator is delivering, may already have ended it.
        await eventually(lambda: gateway.hub.subscribers >= 1 or watch.done())
        await stub.CancelMediaProcessing(calls_pb2.CancelMediaProcessingRequest(call_id=call_id))
        await graph_user.play_prompt(call_id, "x")
        await stub.CancelMediaProcessing(calls_pb2.CancelMediaProcessingRequest(call_id=call_id))
        await watch
        await emulator.notifications_idle()
        after = (await http.get(url)).text
    rpc = {"method": "CancelMediaProcessing", "code": "OK"}
    n = "commsgw_rpc_requests_total"
    assert metric(after, n, **rpc) - metric(before, n, **rpc) == 2
    assert metric(after, "commsgw_graph_requests_total", status="200") >= 2
    assert metric(after, "commsgw_webhook_requests_total", status="202") > metric(
        before, "commsgw_webhook_requests_total", status="202"
    )
    assert metric(after, "commsgw_notifications_total", outcome="accepted") >= 1
    assert metric(after, "commsgw_events_delivered_total") >= 1
    assert metric(after, "commsgw_token_refreshes_total", forced="false") >= 1
    assert "commsgw_rpc_duration_seconds_bucket" in after


async def test_successes_are_logged_at_debug_and_failures_at_info(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
    poster: Poster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    with caplog.at_level(logging.DEBUG, logger="commsgw"):
        await stub.CancelMediaProcessing(calls_pb2.CancelMediaProcessingRequest(call_id=call_id))
        assert (
            await code_of(
                stub.CancelMediaProcessing(
                    calls_pb2.CancelMediaProcessingRequest(call_id=new_guid())
                )
            )
            == grpc.StatusCode.NOT_FOUND
        )
        assert (await poster.post([])).status_code == 202
        assert (await poster.post([], token="not-a-jwt")).status_code == 401

    def lines(name: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == name]

    ok, missing = lines("commsgw.rpc")
    assert (ok.levelno, ok.code, ok.caller) == (logging.DEBUG, "OK", "local")
    assert ok.duration_ms > 0 and ok.graph_request_id
    assert (missing.levelno, missing.code) == (logging.INFO, "NOT_FOUND")
    # The emulator's own callbacks (the call's state) are POSTs too: every 202 is DEBUG.
    posts = lines("commsgw.webhook")
    accepted = [r for r in posts if r.status == 202]
    assert accepted and {(r.levelno, r.tenant) for r in accepted} == {(logging.DEBUG, TENANT)}
    (refused,) = [r for r in posts if r.status != 202]
    assert (refused.levelno, refused.status) == (logging.INFO, 401)
    assert refused.reason.startswith("malformed token")
    metrics = (await poster.http.get(f"http://127.0.0.1:{gateway.http_port}/metrics")).text
    assert metric(metrics, "commsgw_webhook_duration_seconds_count") >= 2


async def test_stream_limits(emulator: Emulator, tmp_path: pathlib.Path) -> None:
    async with (
        running_gateway(
            gateway_settings(
                emulator,
                COMMSGW_CALLERS_FILE=str(callers_file(tmp_path)),
                COMMSGW_MAX_STREAMS="3",
                COMMSGW_MAX_STREAMS_PER_CALLER="2",
            )
        ) as gw,
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch,
    ):
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        open_ = [
            stub.WatchOperations(calls_pb2.WatchOperationsRequest(), metadata=bearer("watcher"))
            for _ in range(2)
        ]
        await started(gw, 2)
        err = await watch_code(stub, bearer("watcher"))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_details(err)[0].reason == "TOO_MANY_STREAMS"
        third = stub.WatchOperations(
            calls_pb2.WatchOperationsRequest(), metadata=bearer("recorder")
        )
        await started(gw, 3)
        err = await watch_code(stub, bearer("recorder"))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # the total
        for c in [*open_, third]:
            c.cancel()
        await eventually(lambda: not gw.limits.open, what="every stream slot released")
        assert await watch_code(stub, bearer("watcher")) == grpc.StatusCode.OK


async def test_message_size_limit(emulator: Emulator) -> None:
    async with running_gateway(gateway_settings(emulator, COMMSGW_MAX_MESSAGE_BYTES="4096")) as gw:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = calls_pb2_grpc.CallsServiceStub(ch)
            req = calls_pb2.CancelMediaProcessingRequest(
                call_id=new_guid(), client_context="x" * 10_000
            )
            assert (
                await code_of(stub.CancelMediaProcessing(req)) == grpc.StatusCode.RESOURCE_EXHAUSTED
            )
        assert not emulator.requests_to(CANCEL_PATH)


async def test_webhook_rate_limit_per_source(emulator: Emulator) -> None:
    gw = Gateway(gateway_settings(emulator, COMMSGW_WEBHOOK_RATE="2"))
    await gw.start()
    async with Poster(emulator, gw) as poster:
        try:
            codes = [(await poster.post([])).status_code for _ in range(10)]
            assert codes[:4] == [202] * 4  # the burst (twice the rate)
            assert 429 in codes[4:]
            r = await poster.post([])
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        finally:
            await gw.stop(0)


async def test_graph_concurrency_limit(emulator: Emulator, graph_user: GraphUser) -> None:
    async with running_gateway(gateway_settings(emulator, COMMSGW_GRAPH_CONCURRENCY="1")) as gw:
        call_ids = [await graph_user.create_call(webhook_url(gw)) for _ in range(3)]
        await gw.tokens.warm()
        emulator.faults.add(Fault(path_pattern=CANCEL_PATH, delay_s=0.4, passthrough=True, count=3))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            stub = calls_pb2_grpc.CallsServiceStub(ch)
            t0 = time.monotonic()
            await asyncio.gather(
                *(
                    stub.CancelMediaProcessing(calls_pb2.CancelMediaProcessingRequest(call_id=c))
                    for c in call_ids
                )
            )
            assert time.monotonic() - t0 >= 1.2  # one at a time: 3 x 0.4 s
        assert len(fired(emulator, CANCEL_PATH)) == 3  # each one was stalled


async def test_sigterm_with_50_open_streams(emulator: Emulator, tmp_path: pathlib.Path) -> None:
    env = process_env(emulator, COMMSGW_SHUTDOWN_GRACE_S="5", COMMSGW_WEBHOOK_DRAIN_S="0.5")
    proc = GatewayProcess(env, str(tmp_path / "gateway.log"))
    await proc.start()
    async with grpc.aio.insecure_channel(proc.target) as ch, httpx.AsyncClient() as http:
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        streams = [stub.WatchOperations(calls_pb2.WatchOperationsRequest()) for _ in range(50)]
        for s in streams:
            await s.wait_for_connection()

        async def all_registered() -> bool:
            page = (await http.get(f"http://127.0.0.1:{proc.http_port}/metrics")).text
            return metric(page, "commsgw_subscribers") == 50

        await eventually(all_registered, interval=0.05)
        outcomes: list[tuple[int, grpc.StatusCode]] = []

        async def read(s: Any) -> None:
            finals = 0
            try:
                async for r in s:
                    if r.bookmark.kind == calls_pb2.BOOKMARK_KIND_FINAL:
                        finals += 1
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as err:
                code = err.code()
            outcomes.append((finals, code))

        readers = [asyncio.create_task(read(s)) for s in streams]
        t0 = time.monotonic()
        assert proc.proc is not None
        proc.proc.send_signal(15)
        async with asyncio.timeout(10):
            await asyncio.gather(*readers)
        rc = await asyncio.to_thread(proc.proc.wait, 10)
        elapsed = time.monotonic() - t0
    assert rc == 0, proc.logs()
    assert elapsed < 5 + 1
    assert outcomes == [(1, grpc.StatusCode.UNAVAILABLE)] * 50


async def test_without_callers_file_only_the_total_stream_limit_applies(
    emulator: Emulator,
) -> None:
    settings = gateway_settings(
        emulator, COMMSGW_MAX_STREAMS="3", COMMSGW_MAX_STREAMS_PER_CALLER="1"
    )
    async with (
        running_gateway(settings) as gw,
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch,
    ):
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        open_ = [stub.WatchOperations(calls_pb2.WatchOperationsRequest()) for _ in range(3)]
        await started(gw, 3)  # one trusted identity, three streams: the total allows it
        err = await watch_code(stub, ())
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for c in open_:
            c.cancel()


async def test_notification_signing_keys_are_loaded_at_start(
    emulator: Emulator, gateway: Gateway
) -> None:
    # No callback has arrived: the gateway loaded the keys by itself, so the first unknown kid
    # (a key rotation) is fetched at once rather than after the refresh throttle.
    await eventually(
        lambda: gateway.webhook._validator.keys_loaded, what="signing keys loaded at start"
    )
    assert emulator.requests_to(r"/v1/.well-known/keys$", "GET")


async def test_a_stream_that_ends_in_error_is_counted_with_its_code(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    bad = stub.WatchOperations(calls_pb2.WatchOperationsRequest(resume_token="not-a-token"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in bad:
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    page = gateway.metrics.render().decode()
    await eventually(
        lambda: (
            metric(
                gateway.metrics.render().decode(),
                "commsgw_rpc_requests_total",
                method="WatchOperations",
                code="INVALID_ARGUMENT",
            )
            == 1
        ),
        what="the failed stream counted as INVALID_ARGUMENT",
    )
    assert metric(page, "commsgw_rpc_requests_total", method="WatchOperations", code="OK") == 0
