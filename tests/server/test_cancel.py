"""CancelMediaProcessing through the generated stub, a real gateway, real MSAL and the HTTPS
Graph emulator: happy path, every error mapping, retries, deadlines, token refresh, bad input;
each test that reaches Graph once per HTTP stack under the Graph client (aiohttp's session, the
default, and httpx's pool: COMMSGW_GRAPH_HTTP_TRANSPORT)."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import AsyncIterator

import grpc
import pytest

from commsgw._config import Settings, from_sources
from commsgw._errors import ConfigError
from commsgw.emulator import Emulator, EmulatorConfig, Fault
from commsgw.graph import TokenProvider, make_sender, ssl_context
from commsgw.graph._transport import AiohttpSender, HttpxSender
from commsgw.server import Gateway, part_configs
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.certs import make_ca, make_leaf
from helpers.emulator import CANCEL_PATH, TOKEN_PATH, GraphUser, fired
from helpers.gateway import gateway_settings, running_gateway, webhook_url
from helpers.ids import new_guid
from helpers.status import error_details

pytestmark = pytest.mark.e2e

SENDERS = {"aiohttp": AiohttpSender, "httpx": HttpxSender}


@pytest.fixture(params=sorted(SENDERS))
def sender(request: pytest.FixtureRequest) -> str:
    """The HTTP stack under the Graph client (COMMSGW_GRAPH_HTTP_TRANSPORT)."""
    return str(request.param)


def settings(emulator: Emulator, sender: str, **overrides: str) -> Settings:
    return gateway_settings(emulator, COMMSGW_GRAPH_HTTP_TRANSPORT=sender, **overrides)


@pytest.fixture
async def gateway(emulator: Emulator, sender: str) -> AsyncIterator[Gateway]:
    """conftest's gateway, once per sender."""
    async with running_gateway(settings(emulator, sender)) as gw:
        yield gw


async def test_happy_path_surfaces_body_location_and_request_ids(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
    sender: str,
) -> None:
    assert isinstance(gateway._sender, SENDERS[sender])  # the stack this run is about
    call_id = await graph_user.create_call(webhook_url(gateway))
    await graph_user.play_prompt(call_id, "p1")
    await graph_user.record(call_id, "r1")
    crid = new_guid()
    call = stub.CancelMediaProcessing(
        calls_pb2.CancelMediaProcessingRequest(call_id=call_id.upper(), client_context="ctx-1"),
        metadata=(("x-client-request-id", crid),),
        timeout=10,
    )
    resp = await call
    op = resp.operation
    assert op.type == calls_pb2.OPERATION_TYPE_CANCEL_MEDIA_PROCESSING
    assert op.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert op.client_context == "ctx-1"
    assert op.odata_type == "#microsoft.graph.cancelMediaProcessingOperation"
    assert len(op.id) == 36
    # Location names the new operation; as documented, its id differs from the body's.
    assert resp.location.startswith(f"{emulator.graph_url}/communications/calls/{call_id}/")
    assert "/operations/" in resp.location
    assert not resp.location.endswith(op.id)
    assert resp.graph_request_id
    assert resp.client_request_id == crid
    trailing = dict(await call.trailing_metadata())
    assert trailing["x-graph-request-id"] == resp.graph_request_id
    sent = emulator.requests_to(CANCEL_PATH, "POST")
    assert len(sent) == 1
    assert sent[0].headers.get("client-request-id") == crid
    # Graph really cancelled both queued operations.
    ops = emulator.calls[call_id].operations
    media = [o for o in ops.values() if "cancel" not in o.odata_type.lower()]
    assert media and all(o.status == "failed" for o in media)


async def test_client_request_id_generated_when_absent(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    resp = await stub.CancelMediaProcessing(
        calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
    )
    assert len(resp.client_request_id) == 36
    assert emulator.requests_to(CANCEL_PATH)[0].headers.get("client-request-id") == (
        resp.client_request_id
    )


@pytest.mark.parametrize(
    ("status", "graph_code", "grpc_code", "reason"),
    [
        (400, "BadRequest", grpc.StatusCode.INVALID_ARGUMENT, "BAD_REQUEST"),
        (403, "Forbidden", grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN"),
        (409, "Conflict", grpc.StatusCode.ABORTED, "CONFLICT"),
        (500, "UnknownError", grpc.StatusCode.INTERNAL, "UNKNOWN_ERROR"),
        (502, "BadGateway", grpc.StatusCode.UNAVAILABLE, "BAD_GATEWAY"),
        (503, "ServiceUnavailable", grpc.StatusCode.UNAVAILABLE, "SERVICE_UNAVAILABLE"),
        (504, "GatewayTimeout", grpc.StatusCode.UNAVAILABLE, "GATEWAY_TIMEOUT"),
        (429, "activityLimitReached", grpc.StatusCode.RESOURCE_EXHAUSTED, "ACTIVITY_LIMIT_REACHED"),
    ],
)
async def test_graph_errors_map_to_status_with_error_info(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
    status: int,
    graph_code: str,
    grpc_code: grpc.StatusCode,
    reason: str,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    emulator.faults.add(
        Fault(path_pattern=CANCEL_PATH, status=status, error_code=graph_code, count=-1)
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
        )
    err = info.value
    assert err.code() == grpc_code
    ei, _ = error_details(err)
    assert ei.reason == reason
    assert ei.metadata["http_status"] == str(status)
    assert ei.metadata["graph_request_id"]
    assert ei.metadata["client_request_id"]
    assert dict(err.trailing_metadata())["x-graph-request-id"] == ei.metadata["graph_request_id"]
    attempts = len(emulator.requests_to(CANCEL_PATH))
    retried = status in (429, 503, 504)
    assert attempts == (gateway.settings.graph_max_attempts if retried else 1)
    assert len(fired(emulator, CANCEL_PATH)) == attempts  # every attempt was answered by the fault


async def test_unknown_call_is_not_found(
    emulator: Emulator, gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(call_id=new_guid()), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    ei, _ = error_details(info.value)
    assert ei.metadata["http_status"] == "404"


async def test_retry_after_is_honoured(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    emulator.faults.add(
        Fault(
            path_pattern=CANCEL_PATH, status=429, retry_after=0.6, error_code="activityLimitReached"
        )
    )
    with caplog.at_level(logging.INFO, logger="commsgw.graph"):
        resp = await stub.CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
        )
    assert resp.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert [r.status for r in emulator.requests_to(CANCEL_PATH)] == [429, 200]
    assert len(fired(emulator, CANCEL_PATH)) == 1
    # The emulator's Retry-After reached the decision: the retry waited exactly that long.
    assert retry_waits(caplog) == [0.6]


def retry_waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The waits before a retry the gateway decided on, as it logged them."""
    return [
        float(r.args[-1])
        for r in caplog.records
        if r.name == "commsgw.graph"
        and "; attempt %d of %d in" in str(r.msg)
        and isinstance(r.args, tuple)
    ]


# 2.05 s: the wait would end 50 ms before the deadline, too late for another attempt.
@pytest.mark.parametrize("timeout", [2.0, 2.05])
async def test_retry_after_past_the_deadline_answers_now(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
    timeout: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    emulator.faults.add(
        Fault(
            path_pattern=CANCEL_PATH,
            status=429,
            retry_after=5,
            count=-1,
            error_code="activityLimitReached",
        )
    )
    with (
        caplog.at_level(logging.INFO, logger="commsgw.graph"),
        pytest.raises(grpc.aio.AioRpcError) as info,
    ):
        # The wait (Retry-After 5 s, capped at COMMSGW_RETRY_MAX_S=2) ends at the deadline or
        # too close to it.
        await stub.CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=timeout
        )
    # Graph's answer at once (not the deadline's), no retry decided on, nothing slept.
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_waits(caplog) == []
    _, retry = error_details(info.value)
    assert retry is not None and retry.retry_delay.seconds == 5
    assert len(emulator.requests_to(CANCEL_PATH)) == 1
    assert len(fired(emulator, CANCEL_PATH)) == 1


async def test_503_without_retry_after_backs_off_then_succeeds(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    emulator.faults.add(Fault(path_pattern=CANCEL_PATH, status=503, count=2))
    resp = await stub.CancelMediaProcessing(
        calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
    )
    assert resp.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert [r.status for r in emulator.requests_to(CANCEL_PATH)] == [503, 503, 200]
    assert len(fired(emulator, CANCEL_PATH)) == 2


async def test_connection_reset_is_retried(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    fault = emulator.faults.add(Fault(path_pattern=CANCEL_PATH, reset_connection=True, count=1))
    resp = await stub.CancelMediaProcessing(
        calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
    )
    assert resp.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
    # The first attempt was reset (status 0: no answer), the retry answered.
    assert [hit[0] for hit in fired(emulator, CANCEL_PATH)] == [fault]
    sent = emulator.requests_to(CANCEL_PATH)
    assert [r.status for r in sent] == [0, 200]
    assert sent[0].headers["x-emulator-fault"] == fault


async def test_stall_past_the_deadline_is_deadline_exceeded(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    emulator.faults.add(Fault(path_pattern=CANCEL_PATH, delay_s=3, passthrough=True))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=0.8
        )
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert len(fired(emulator, CANCEL_PATH)) == 1  # Graph did stall


async def test_gateway_timeout_cuts_a_stalled_graph(
    emulator: Emulator, graph_user: GraphUser, sender: str
) -> None:
    async with running_gateway(settings(emulator, sender, COMMSGW_GRAPH_TIMEOUT_S="0.5")) as gw:
        call_id = await graph_user.create_call(webhook_url(gw))
        emulator.faults.add(Fault(path_pattern=CANCEL_PATH, delay_s=3, passthrough=True))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await calls_pb2_grpc.CallsServiceStub(ch).CancelMediaProcessing(
                    calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
                )
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert error_details(info.value)[0].reason == "GRAPH_TIMEOUT"
        assert len(fired(emulator, CANCEL_PATH)) == 1  # sent once: a timeout is not retried


async def test_401_forces_one_token_refresh_and_retry(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    await stub.CancelMediaProcessing(calls_pb2.CancelMediaProcessingRequest(call_id=call_id))
    tokens_before = len(emulator.requests_to(TOKEN_PATH))
    emulator.revoke_tokens()
    resp = await stub.CancelMediaProcessing(
        calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
    )
    assert resp.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert len(emulator.requests_to(TOKEN_PATH)) == tokens_before + 1
    assert [r.status for r in emulator.requests_to(CANCEL_PATH)] == [200, 401, 200]


async def test_persistent_401_is_unauthenticated(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    emulator.faults.add(
        Fault(
            path_pattern=CANCEL_PATH, status=401, count=-1, error_code="InvalidAuthenticationToken"
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_details(info.value)[0].reason == "INVALID_AUTHENTICATION_TOKEN"
    assert len(emulator.requests_to(CANCEL_PATH)) == 2
    assert len(fired(emulator, CANCEL_PATH)) == 2  # the refreshed token was refused too


async def test_token_endpoint_down_is_unauthenticated(
    emulator: Emulator, graph_user: GraphUser
) -> None:
    emulator.faults.add(Fault(path_pattern=TOKEN_PATH, status=500, count=-1))
    async with running_gateway(gateway_settings(emulator)) as gw:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await calls_pb2_grpc.CallsServiceStub(ch).CancelMediaProcessing(
                    calls_pb2.CancelMediaProcessingRequest(call_id=new_guid()), timeout=10
                )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert not emulator.requests_to(CANCEL_PATH)
        assert fired(emulator, TOKEN_PATH)


async def test_graph_unreachable_is_unavailable(emulator: Emulator, sender: str) -> None:
    # A port nothing listens on: connection refused on every attempt.
    unreachable = settings(emulator, sender, COMMSGW_GRAPH_URL="https://127.0.0.1:9")
    async with running_gateway(unreachable) as gw:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await calls_pb2_grpc.CallsServiceStub(ch).CancelMediaProcessing(
                    calls_pb2.CancelMediaProcessingRequest(call_id=new_guid()), timeout=10
                )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(info.value)[0].reason == "GRAPH_UNREACHABLE"


@pytest.mark.parametrize(
    ("request_kwargs", "reason"),
    [
        ({"call_id": ""}, "INVALID_CALL_ID"),
        ({"call_id": "not-a-call"}, "INVALID_CALL_ID"),
        ({"call_id": "57dab8b1-894c-409a-b240-bd8beae7889"}, "INVALID_CALL_ID"),
        ({"call_id": "../../users"}, "INVALID_CALL_ID"),
        ({"call_id": new_guid(), "client_context": "x" * 257}, "CLIENT_CONTEXT_TOO_LONG"),
        ({"call_id": new_guid(), "tenant_id": new_guid()}, "UNKNOWN_TENANT"),
        ({"call_id": new_guid(), "tenant_id": "contoso"}, "UNKNOWN_TENANT"),
    ],
)
async def test_bad_input_is_invalid_argument_before_graph(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    request_kwargs: dict[str, str],
    reason: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(**request_kwargs), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(info.value)[0].reason == reason
    assert not emulator.requests_to(CANCEL_PATH)


async def test_client_context_of_256_is_accepted(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    resp = await stub.CancelMediaProcessing(
        calls_pb2.CancelMediaProcessingRequest(call_id=call_id, client_context="é" * 256)
    )
    assert resp.operation.client_context == "é" * 256


async def test_concurrent_cancels_share_one_token(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    call_ids = [await graph_user.create_call(webhook_url(gateway)) for _ in range(5)]
    before = len(emulator.requests_to(TOKEN_PATH))
    # Cold caches (ours and MSAL's): 20 concurrent requests must cause one acquisition.
    gateway.tokens._tokens.clear()
    for app in gateway.tokens._apps.values():
        app.remove_tokens_for_client()
    results = await asyncio.gather(
        *(
            stub.CancelMediaProcessing(calls_pb2.CancelMediaProcessingRequest(call_id=c))
            for c in call_ids * 4
        )
    )
    assert len(results) == 20
    assert len(emulator.requests_to(TOKEN_PATH)) == before + 1


async def test_certificate_credential_against_a_custom_authority(tmp_path: pathlib.Path) -> None:
    """A certificate instead of a secret, real MSAL signing the client assertion, with the
    authority and Graph hosts given explicitly (what a private cloud or a proxy would need)."""
    _, ca_cert, ca_key = make_ca("app CA")
    app = make_leaf(ca_cert, ca_key, "bot-app", server=False, rsa_key=True)
    pem = tmp_path / "app.pem"
    pem.write_bytes(app.key + app.cert)
    cfg = EmulatorConfig(
        port=0, state_dir=tmp_path / "emu", client_certificates=(app.cert.decode(),)
    )
    async with Emulator(cfg) as emu:
        env = {
            "COMMSGW_GRPC_ADDR": "127.0.0.1:0",
            "COMMSGW_HTTP_ADDR": "127.0.0.1:0",
            "AZURE_TENANT_ID": cfg.tenant_id,
            "AZURE_CLIENT_ID": cfg.client_id,
            "AZURE_CLIENT_CERTIFICATE_PATH": str(pem),
            "COMMSGW_GRAPH_URL": emu.base_url,
            "COMMSGW_AUTHORITY_HOST": emu.authority_host,
            "COMMSGW_NOTIFICATION_OPENID_URL": emu.notification_openid_config_url,
            "COMMSGW_CA_FILE": str(emu.ca_path),
        }
        settings = from_sources(env)
        assert not settings.emulator_mode
        gw = Gateway(settings)
        await gw.start()
        user = GraphUser(emu)
        try:
            call_id = await user.create_call(webhook_url(gw))
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
                resp = await calls_pb2_grpc.CallsServiceStub(ch).CancelMediaProcessing(
                    calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
                )
            assert resp.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
            token_requests = emu.requests_to(TOKEN_PATH)
            assert token_requests and all(r.status == 200 for r in token_requests)
        finally:
            await user.aclose()
            await gw.stop(0)


async def test_a_non_rsa_app_certificate_is_refused_at_start_up(tmp_path: pathlib.Path) -> None:
    _, ca_cert, ca_key = make_ca("app CA")
    app = make_leaf(ca_cert, ca_key, "bot-app", server=False)  # an EC key
    pem = tmp_path / "app.pem"
    pem.write_bytes(app.key + app.cert)
    env = {
        "AZURE_TENANT_ID": new_guid(),
        "AZURE_CLIENT_ID": new_guid(),
        "AZURE_CLIENT_CERTIFICATE_PATH": str(pem),
    }
    configs = part_configs(from_sources(env))
    sender = make_sender(configs.transport, ssl_context(configs.transport))
    try:
        with pytest.raises(ConfigError, match=r"AZURE_CLIENT_CERTIFICATE_PATH.*RSA"):
            TokenProvider(configs.tokens, sender=sender)
    finally:
        await sender.aclose()
