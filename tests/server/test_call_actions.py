"""The call-control RPCs through real gRPC, a real gateway, real MSAL and the HTTPS emulator:
bad input refused before Graph with a precise reason, retry safety per retry class, the
media RPCs answering Graph's operation, GetOperation and WaitOperation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from commsgw._config import from_sources
from commsgw._errors import FailedPrecondition
from commsgw.emulator import Emulator, Fault
from commsgw.graph import ACTIONS, RequestConfig
from commsgw.server import Gateway
from commsgw.testing import free_port
from graphcomms.v1 import call_types_pb2 as ct
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.emulator import GraphUser
from helpers.gateway import gateway_settings, running_gateway, webhook_url

CALL = "5f1b7d4e-0c1a-4a5b-9d1e-2b3c4d5e6f70"
USER = "11111111-2222-3333-4444-555555555555"
PROMPT = ct.MediaInfo(uri="https://cdn.example/prompt.wav")

pytestmark = pytest.mark.e2e

SENDERS = ("aiohttp", "httpx")  # COMMSGW_GRAPH_HTTP_TRANSPORT: the retry-class tests run on each


@pytest.fixture
def sender() -> str:
    """The HTTP stack under the Graph client: the default one, unless a test runs on each."""
    return from_sources({}).graph_http_transport


@pytest.fixture
async def gateway(emulator: Emulator, sender: str) -> AsyncIterator[Gateway]:
    """conftest's gateway, on `sender`."""
    settings = gateway_settings(emulator, COMMSGW_GRAPH_HTTP_TRANSPORT=sender)
    async with running_gateway(settings) as gw:
        yield gw


def _user(uid: str = USER) -> ct.InvitationParticipantInfo:
    return ct.InvitationParticipantInfo(identity=ct.IdentitySet(user=ct.Identity(id=uid)))


def _details(err: grpc.aio.AioRpcError) -> tuple[str, list[Any]]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    reason = ""
    rest: list[Any] = []
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            reason = info.reason
        else:
            rest.append(d)
    return reason, rest


async def _fails(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


# (RPC, request, expected code, expected reason): one per class of bad input.
BAD_INPUT: list[tuple[str, Any, grpc.StatusCode, str]] = [
    ("PlayPrompt", calls_pb2.PlayPromptRequest(call_id="nope", prompts=[PROMPT]),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CALL_ID"),
    ("PlayPrompt", calls_pb2.PlayPromptRequest(call_id=CALL),
     grpc.StatusCode.INVALID_ARGUMENT, "NO_PROMPT"),
    ("PlayPrompt", calls_pb2.PlayPromptRequest(call_id=CALL, prompts=[PROMPT] * 21),
     grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_PROMPTS"),
    ("PlayPrompt", calls_pb2.PlayPromptRequest(
        call_id=CALL, prompts=[ct.MediaInfo(uri="http://cdn.example/p.wav")]),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_MEDIA_URI"),
    ("PlayPrompt", calls_pb2.PlayPromptRequest(
        call_id=CALL, prompts=[ct.MediaInfo(uri="https://x/p.wav", resource_id="r")]),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_MEDIA_URI"),
    ("PlayPrompt", calls_pb2.PlayPromptRequest(call_id=CALL, prompts=[PROMPT],
                                               client_context="x" * 257),
     grpc.StatusCode.INVALID_ARGUMENT, "CLIENT_CONTEXT_TOO_LONG"),
    ("PlayPrompt", calls_pb2.PlayPromptRequest(call_id=CALL, prompts=[PROMPT],
                                               tenant_id="22222222-2222-2222-2222-222222222222"),
     grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_TENANT"),
    ("RecordResponse", calls_pb2.RecordResponseRequest(call_id=CALL, prompts=[PROMPT] * 2),
     grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_PROMPTS"),
    ("RecordResponse", calls_pb2.RecordResponseRequest(call_id=CALL,
                                                       max_record_duration_seconds=121),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TIMEOUT"),
    ("RecordResponse", calls_pb2.RecordResponseRequest(call_id=CALL,
                                                       initial_silence_timeout_seconds=0),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TIMEOUT"),
    ("RecordResponse", calls_pb2.RecordResponseRequest(call_id=CALL,
                                                       stop_tones=[ct.TONE_FLASH]),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TONE"),
    ("SendDtmfTones", calls_pb2.SendDtmfTonesRequest(call_id=CALL),
     grpc.StatusCode.INVALID_ARGUMENT, "NO_TONE"),
    ("SendDtmfTones", calls_pb2.SendDtmfTonesRequest(call_id=CALL, tones=[0]),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TONE"),
    ("SendDtmfTones", calls_pb2.SendDtmfTonesRequest(call_id=CALL, tones=[ct.TONE_1],
                                                     delay_between_tones_ms=5001),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_DELAY"),
    ("UpdateRecordingStatus", calls_pb2.UpdateRecordingStatusRequest(call_id=CALL),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RECORDING_STATUS"),
    ("CreateCall", calls_pb2.CreateCallRequest(),
     grpc.StatusCode.INVALID_ARGUMENT, "NO_TARGET"),
    ("CreateCall", calls_pb2.CreateCallRequest(targets=[_user()] * 6),
     grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_TARGETS"),
    ("CreateCall", calls_pb2.CreateCallRequest(targets=[_user("not-a-guid")]),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_IDENTITY"),
    ("CreateCall", calls_pb2.CreateCallRequest(targets=[ct.InvitationParticipantInfo(
        identity=ct.IdentitySet(phone=ct.Identity(id="0123")))]),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_IDENTITY"),
    ("CreateCall", calls_pb2.CreateCallRequest(targets=[ct.InvitationParticipantInfo(
        identity=ct.IdentitySet(phone=ct.Identity(id="+14255550123")))]),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_IDENTITY"),  # no application instance source
    ("CreateCall", calls_pb2.CreateCallRequest(targets=[_user()],
                                               callback_uri="http://bot.example/cb"),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CALLBACK_URI"),
    ("CreateCall", calls_pb2.CreateCallRequest(targets=[_user()],
                                               requested_modalities=[ct.MODALITY_VIDEO]),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_MODALITY"),
    ("CreateCall", calls_pb2.CreateCallRequest(join_url="https://example.com/l/meetup-join/x"),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_JOIN_URL"),
    ("CreateCall", calls_pb2.CreateCallRequest(
        join_meeting_id=ct.JoinMeetingId(join_meeting_id="12ab")),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_MEETING_ID"),
    ("AnswerCall", calls_pb2.AnswerCallRequest(call_id=CALL, participant_capacity=1001),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARTICIPANT_CAPACITY"),
    ("RejectCall", calls_pb2.RejectCallRequest(call_id=CALL, reason=9),  # type: ignore[arg-type]
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REJECT_REASON"),
    ("RedirectCall", calls_pb2.RedirectCallRequest(call_id=CALL),
     grpc.StatusCode.INVALID_ARGUMENT, "NO_TARGET"),
    ("RedirectCall", calls_pb2.RedirectCallRequest(call_id=CALL, targets=[_user()] * 26),
     grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_TARGETS"),
    ("RedirectCall", calls_pb2.RedirectCallRequest(call_id=CALL, targets=[_user()],
                                                   timeout_seconds=14),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TIMEOUT"),
    ("TransferCall", calls_pb2.TransferCallRequest(call_id=CALL),
     grpc.StatusCode.INVALID_ARGUMENT, "NO_TARGET"),
    ("TransferCall", calls_pb2.TransferCallRequest(call_id=CALL, transfer_target=_user(),
                                                   client_context="ctx"),
     grpc.StatusCode.INVALID_ARGUMENT, "NOT_SUPPORTED_BY_GRAPH"),  # transfer has none
    ("TransferCall", calls_pb2.TransferCallRequest(
        call_id=CALL, transfer_target=_user(), transferee=ct.ParticipantInfo(
            identity=ct.IdentitySet(user=ct.Identity(id=USER)), endpoint_type="softphone")),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ENDPOINT_TYPE"),
    ("TransferCall", calls_pb2.TransferCallRequest(
        call_id=CALL, transfer_target=_user(), transferee=ct.ParticipantInfo(
            identity=ct.IdentitySet(user=ct.Identity(id=USER)), region="emea")),
     grpc.StatusCode.INVALID_ARGUMENT, "NOT_SUPPORTED_BY_GRAPH"),  # read-only at Graph
    ("CreateCall", calls_pb2.CreateCallRequest(targets=[_user()], source=ct.ParticipantInfo(
        identity=ct.IdentitySet(application_instance=ct.Identity(id=USER)),
        endpoint_type="Voicemail")),  # Graph's member is "voicemail"
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ENDPOINT_TYPE"),
    ("MuteParticipant", calls_pb2.MuteParticipantRequest(call_id=CALL, participant_id="a/b"),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARTICIPANT_ID"),
    ("RemoveParticipant", calls_pb2.RemoveParticipantRequest(call_id=CALL),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARTICIPANT_ID"),
    ("InviteParticipants", calls_pb2.InviteParticipantsRequest(call_id=CALL,
                                                               participants=[_user()] * 6),
     grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_TARGETS"),
    ("GetOperation", calls_pb2.GetOperationRequest(call_id=CALL, operation_id="x"),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_OPERATION_ID"),
    ("WaitOperation", calls_pb2.WaitOperationRequest(
        call_id=CALL, operation_id=CALL, timeout=duration_pb2.Duration(seconds=3601)),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TIMEOUT"),
    ("HangUpCall", calls_pb2.HangUpCallRequest(call_id=""),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CALL_ID"),
    ("GetCall", calls_pb2.GetCallRequest(call_id="nope"),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CALL_ID"),
    ("KeepAlive", calls_pb2.KeepAliveRequest(call_id="not-a-guid"),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CALL_ID"),
    ("AnswerCall", calls_pb2.AnswerCallRequest(call_id=CALL, callback_uri="http://bot.example/cb"),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CALLBACK_URI"),
    ("SubscribeToTone", calls_pb2.SubscribeToToneRequest(call_id=CALL, client_context="x" * 257),
     grpc.StatusCode.INVALID_ARGUMENT, "CLIENT_CONTEXT_TOO_LONG"),
    ("Mute", calls_pb2.MuteRequest(call_id="nope"),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CALL_ID"),
    ("Unmute", calls_pb2.UnmuteRequest(call_id=CALL, client_context="x" * 257),
     grpc.StatusCode.INVALID_ARGUMENT, "CLIENT_CONTEXT_TOO_LONG"),
    ("ListParticipants", calls_pb2.ListParticipantsRequest(call_id="nope"),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CALL_ID"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rpc", "request_", "code", "reason"),
    BAD_INPUT,
    ids=[f"{r}-{reason}-{i}" for i, (r, _, _, reason) in enumerate(BAD_INPUT)],
)
async def test_bad_input_is_refused_before_graph(
    emulator: Emulator,
    stub: calls_pb2_grpc.CallsServiceStub,
    rpc: str,
    request_: Any,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    before = len([r for r in emulator.request_log if r.path.startswith("/v1.0/")])
    err = await _fails(getattr(stub, rpc)(request_, timeout=10))
    assert err.code() == code, err.details()
    assert _details(err)[0] == reason
    after = len([r for r in emulator.request_log if r.path.startswith("/v1.0/")])
    assert after == before, "a refused request reached Graph"


def test_no_callback_and_no_public_webhook_is_a_failed_precondition() -> None:
    # Without COMMSGW_PUBLIC_WEBHOOK_URL outside emulator mode (where the gateway derives its
    # local webhook), actions are written with no default callbackUri.
    s = from_sources({})
    settings = RequestConfig(tenant_id=s.tenant_id, tenants=s.tenants, public_webhook_url="")
    for rpc, request in (
        ("AnswerCall", calls_pb2.AnswerCallRequest(call_id=CALL)),
        ("CreateCall", calls_pb2.CreateCallRequest(targets=[_user()])),
    ):
        with pytest.raises(FailedPrecondition) as info:
            ACTIONS[rpc].build(request, settings)
        assert info.value.reason == "CALLBACK_URI_NOT_CONFIGURED"


async def test_play_prompt_answers_graphs_operation_and_wait_returns_it_done(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    emulator.media_op_seconds = 0.3
    call_id = await graph_user.create_call(webhook_url(gateway))
    resp = await stub.PlayPrompt(
        calls_pb2.PlayPromptRequest(call_id=call_id, prompts=[PROMPT], client_context="menu"),
        timeout=10,
    )
    op = resp.operation
    assert op.type == calls_pb2.OPERATION_TYPE_PLAY_PROMPT
    assert op.status in (calls_pb2.OPERATION_STATUS_RUNNING, calls_pb2.OPERATION_STATUS_NOT_STARTED)
    assert op.client_context == "menu"
    assert resp.location.endswith(f"/operations/{op.id}")
    assert resp.graph_request_id
    done = await stub.WaitOperation(
        calls_pb2.WaitOperationRequest(call_id=call_id, operation_id=op.id), timeout=10
    )
    assert done.operation.id == op.id
    assert done.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
    # The completion came as a notification: the event log knows it now.
    got = await stub.GetOperation(
        calls_pb2.GetOperationRequest(call_id=call_id, operation_id=op.id), timeout=10
    )
    assert got.source == calls_pb2.OPERATION_SOURCE_EVENT_LOG
    assert got.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED


async def test_wait_finds_a_completion_that_arrived_before_it_began(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    emulator.media_op_seconds = 0.05
    call_id = await graph_user.create_call(webhook_url(gateway))
    op = (
        await stub.PlayPrompt(
            calls_pb2.PlayPromptRequest(call_id=call_id, prompts=[PROMPT]), timeout=10
        )
    ).operation
    # Wait until the completion is in the log, then start waiting.
    watch = stub.WatchOperations(
        calls_pb2.WatchOperationsRequest(
            call_ids=[call_id], statuses=[calls_pb2.OPERATION_STATUS_COMPLETED],
            include_snapshot=True,
        )
    )  # fmt: skip
    async with asyncio.timeout(10):
        async for r in watch:
            if r.WhichOneof("kind") == "event":
                break
    watch.cancel()
    done = await stub.WaitOperation(
        calls_pb2.WaitOperationRequest(call_id=call_id, operation_id=op.id), timeout=5
    )
    assert done.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED


async def test_wait_that_times_out_carries_the_last_known_state(
    emulator: Emulator,
    gateway: Gateway,
    stub: calls_pb2_grpc.CallsServiceStub,
    graph_user: GraphUser,
) -> None:
    emulator.media_op_seconds = 60
    call_id = await graph_user.create_call(webhook_url(gateway))
    op = (
        await stub.PlayPrompt(
            calls_pb2.PlayPromptRequest(call_id=call_id, prompts=[PROMPT]), timeout=10
        )
    ).operation
    err = await _fails(
        stub.WaitOperation(
            calls_pb2.WaitOperationRequest(
                call_id=call_id,
                operation_id=op.id,
                timeout=duration_pb2.Duration(nanos=300_000_000),
            ),
            timeout=10,
        )
    )
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    reason, rest = _details(err)
    assert reason == "OPERATION_NOT_DONE"
    last = calls_pb2.Operation()
    assert any(d.Unpack(last) for d in rest), "the last known operation is not in the details"
    assert last.id == op.id
    assert last.status == calls_pb2.OPERATION_STATUS_RUNNING


@pytest.mark.parametrize("sender", SENDERS)
async def test_an_unsafe_action_is_not_retried_after_a_503(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub, graph_user: GraphUser,
    gateway: Gateway,
) -> None:  # fmt: skip
    call_id = await graph_user.create_call(webhook_url(gateway))
    emulator.faults.add(Fault(path_pattern=r"/playPrompt$", status=503, retry_after=0.01))
    err = await _fails(
        stub.PlayPrompt(calls_pb2.PlayPromptRequest(call_id=call_id, prompts=[PROMPT]), timeout=10)
    )
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert len(emulator.requests_to(r"/playPrompt$", "POST")) == 1
    assert emulator.request_log[-1].headers.get("x-emulator-fault"), "the fault did not fire"


@pytest.mark.parametrize("sender", SENDERS)
async def test_an_unsafe_action_is_retried_after_a_429(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub, graph_user: GraphUser,
    gateway: Gateway,
) -> None:  # fmt: skip
    call_id = await graph_user.create_call(webhook_url(gateway))
    emulator.faults.add(
        Fault(path_pattern=r"/playPrompt$", status=429, retry_after=0.01,
              error_code="activityLimitReached")
    )  # fmt: skip
    resp = await stub.PlayPrompt(
        calls_pb2.PlayPromptRequest(call_id=call_id, prompts=[PROMPT]), timeout=10
    )
    assert resp.operation.id
    sent = emulator.requests_to(r"/playPrompt$", "POST")
    assert len(sent) == 2
    assert sent[0].headers.get("x-emulator-fault") and not sent[1].headers.get("x-emulator-fault")


@pytest.mark.parametrize("sender", SENDERS)
async def test_an_unsafe_action_whose_connection_broke_after_sending_is_not_retried(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub, graph_user: GraphUser,
    gateway: Gateway,
) -> None:  # fmt: skip
    call_id = await graph_user.create_call(webhook_url(gateway))
    emulator.faults.add(Fault(path_pattern=r"/playPrompt$", reset_connection=True))
    err = await _fails(
        stub.PlayPrompt(calls_pb2.PlayPromptRequest(call_id=call_id, prompts=[PROMPT]), timeout=10)
    )
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert _details(err)[0] == "GRAPH_OUTCOME_UNKNOWN"
    sent = emulator.requests_to(r"/playPrompt$", "POST")
    assert len(sent) == 1 and sent[0].headers.get("x-emulator-fault")


@pytest.mark.parametrize("sender", SENDERS)
async def test_an_idempotent_action_is_retried_after_a_503(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub, graph_user: GraphUser,
    gateway: Gateway,
) -> None:  # fmt: skip
    call_id = await graph_user.create_call(webhook_url(gateway))
    emulator.faults.add(
        Fault(path_pattern=rf"/communications/calls/{call_id}$", method="GET", status=503,
              retry_after=0.01)
    )  # fmt: skip
    resp = await stub.GetCall(calls_pb2.GetCallRequest(call_id=call_id), timeout=10)
    assert resp.call.id == call_id
    sent = emulator.requests_to(rf"/communications/calls/{call_id}$", "GET")
    assert len(sent) == 2 and sent[0].headers.get("x-emulator-fault")


@pytest.mark.parametrize("sender", SENDERS)
async def test_an_unsafe_action_is_retried_when_graph_could_not_be_reached(
    emulator: Emulator, sender: str
) -> None:
    # Nothing listens on the Graph URL: every attempt fails before anything is sent, so even
    # an unsafe action is tried again, up to the attempts allowed.
    settings = gateway_settings(
        emulator,
        COMMSGW_GRAPH_URL=f"https://127.0.0.1:{free_port()}",
        COMMSGW_GRAPH_MAX_ATTEMPTS="3",
        COMMSGW_GRAPH_HTTP_TRANSPORT=sender,
    )
    async with (
        running_gateway(settings) as gw,
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch,
    ):
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        err = await _fails(
            stub.PlayPrompt(calls_pb2.PlayPromptRequest(call_id=CALL, prompts=[PROMPT]), timeout=10)
        )
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert _details(err)[0] == "GRAPH_UNREACHABLE"
        assert gw.metrics.graph_requests.labels("0")._value.get() == 3


async def test_send_dtmf_tones_is_refused_outside_the_global_cloud(emulator: Emulator) -> None:
    # A gateway configured for US Gov L4 with its endpoints pointed at the emulator.
    base = emulator.base_url
    settings = from_sources(
        {
            "AZURE_TENANT_ID": emulator.config.tenant_id,
            "AZURE_CLIENT_ID": emulator.config.client_id,
            "AZURE_CLIENT_SECRET": emulator.config.client_secret,
            "COMMSGW_CLOUD": "usgov",
            "COMMSGW_GRAPH_URL": base,
            "COMMSGW_AUTHORITY_HOST": base,
            "COMMSGW_NOTIFICATION_OPENID_URL": emulator.notification_openid_config_url,
            "COMMSGW_CA_FILE": str(emulator.ca_path),
            "COMMSGW_GRPC_ADDR": "127.0.0.1:0",
            "COMMSGW_HTTP_ADDR": "127.0.0.1:0",
        }
    )
    async with (
        running_gateway(settings) as gw,
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch,
    ):
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        err = await _fails(
            stub.SendDtmfTones(
                calls_pb2.SendDtmfTonesRequest(call_id=CALL, tones=[ct.TONE_1]), timeout=10
            )
        )
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert _details(err)[0] == "NOT_IN_THIS_CLOUD"
        assert not emulator.requests_to(r"/sendDtmfTones$")
