"""StartHoldMusic / StopHoldMusic end to end: real gRPC to a real gateway, MSAL and HTTPS to
the emulator, whose operation notifications come back through the gateway's webhook."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import duration_pb2

from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway
from commsgw_client import InvalidArgumentError
from graphcomms.v1 import call_types_pb2 as ct
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.client_flavours import FLAVOURS, open_client
from helpers.maximal import USER, invitation
from helpers.polling import eventually
from helpers.status import error_details

# Faster than conftest's emulator: rings in 50 ms, media operations of 200 ms.
pytestmark = [pytest.mark.e2e, pytest.mark.emulator_timings(ring_s=0.05, media_op_seconds=0.2)]

MUSIC = ct.MediaInfo(uri="https://cdn.example/hold.wav")


async def _established(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub
) -> tuple[str, str]:
    resp = await stub.CreateCall(
        calls_pb2.CreateCallRequest(targets=[invitation("user", USER)]), timeout=10
    )
    call = emulator.calls[resp.call.id]
    await eventually(lambda: call.state == "established", what="established")
    return call.id, next(p for p in call.participants if p != call.my_participant_id)


async def _waited(
    stub: calls_pb2_grpc.CallsServiceStub, call_id: str, op_id: str
) -> calls_pb2.Operation:
    resp = await stub.WaitOperation(
        calls_pb2.WaitOperationRequest(
            call_id=call_id, operation_id=op_id, timeout=duration_pb2.Duration(seconds=5)
        ),
        timeout=10,
    )
    return resp.operation


async def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    details = error_details(info.value)
    return info.value.code(), details[0].reason if details else ""


async def test_hold_music_puts_a_participant_on_hold_and_takes_it_off(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    call_id, pid = await _established(emulator, stub)
    started = await stub.StartHoldMusic(
        calls_pb2.StartHoldMusicRequest(
            call_id=call_id, participant_id=pid, custom_prompt=MUSIC, client_context="hold"
        ),
        timeout=10,
    )
    op = started.operation
    assert op.type == calls_pb2.OPERATION_TYPE_START_HOLD_MUSIC
    assert op.status == calls_pb2.OPERATION_STATUS_RUNNING and op.client_context == "hold"
    assert started.location.endswith(f"/operations/{op.id}")
    done = await _waited(stub, call_id, op.id)
    assert done.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert emulator.calls[call_id].participants[pid].on_hold
    sent = emulator.requests_to(rf"/participants/{pid}/startHoldMusic$", "POST")[-1]
    assert json.loads(sent.body)["customPrompt"] == {
        "@odata.type": "#microsoft.graph.mediaPrompt",
        "mediaInfo": {"@odata.type": "#microsoft.graph.mediaInfo", "uri": MUSIC.uri},
    }
    again = stub.StartHoldMusic(
        calls_pb2.StartHoldMusicRequest(call_id=call_id, participant_id=pid), timeout=10
    )
    assert (await _code(again))[0] == grpc.StatusCode.ABORTED  # Graph's 409: already held

    stopped = await stub.StopHoldMusic(
        calls_pb2.StopHoldMusicRequest(call_id=call_id, participant_id=pid), timeout=10
    )
    assert stopped.operation.type == calls_pb2.OPERATION_TYPE_STOP_HOLD_MUSIC
    done = await _waited(stub, call_id, stopped.operation.id)
    assert done.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert not emulator.calls[call_id].participants[pid].on_hold
    again = stub.StopHoldMusic(
        calls_pb2.StopHoldMusicRequest(call_id=call_id, participant_id=pid), timeout=10
    )
    assert (await _code(again))[0] == grpc.StatusCode.ABORTED


async def test_hold_music_refusals(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    call_id, _ = await _established(emulator, stub)
    bot = emulator.calls[call_id].my_participant_id
    before = len(emulator.request_log)
    for request, reason in (
        (calls_pb2.StartHoldMusicRequest(call_id=call_id, participant_id="a/b"),
         "INVALID_PARTICIPANT_ID"),
        (calls_pb2.StartHoldMusicRequest(call_id=call_id, participant_id=bot,
                                         custom_prompt=ct.MediaInfo(uri="http://x/h.wav")),
         "INVALID_MEDIA_URI"),
        (calls_pb2.StartHoldMusicRequest(call_id=call_id, participant_id=bot,
                                         client_context="x" * 257), "CLIENT_CONTEXT_TOO_LONG"),
        (calls_pb2.StopHoldMusicRequest(call_id="nope", participant_id=bot), "INVALID_CALL_ID"),
    ):  # fmt: skip
        rpc = (
            stub.StartHoldMusic
            if isinstance(request, calls_pb2.StartHoldMusicRequest)
            else (stub.StopHoldMusic)
        )
        assert await _code(rpc(request, timeout=10)) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert len(emulator.request_log) == before, "a refused request reached Graph"
    own = stub.StartHoldMusic(
        calls_pb2.StartHoldMusicRequest(call_id=call_id, participant_id=bot), timeout=10
    )
    assert (await _code(own))[0] == grpc.StatusCode.INVALID_ARGUMENT  # Graph's 400: the bot
    gone = stub.StartHoldMusic(
        calls_pb2.StartHoldMusicRequest(call_id=call_id, participant_id="unknown-participant"),
        timeout=10,
    )
    assert (await _code(gone))[0] == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_python_client_holds_and_releases_a_participant(
    emulator: Emulator, gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, flavour: str
) -> None:
    call_id, pid = await _established(emulator, stub)
    async with open_client(flavour, f"127.0.0.1:{gateway.grpc_port}") as client:
        held = await client.start_hold_music(
            call_id, pid, custom_prompt=MUSIC.uri, client_context="hold", wait=True
        )
        assert held.type == calls_pb2.OPERATION_TYPE_START_HOLD_MUSIC
        assert held.status == calls_pb2.OPERATION_STATUS_COMPLETED
        assert emulator.calls[call_id].participants[pid].on_hold
        sent = emulator.requests_to(rf"/participants/{pid}/startHoldMusic$", "POST")[-1]
        assert json.loads(sent.body)["customPrompt"]["mediaInfo"]["uri"] == MUSIC.uri
        released = await client.stop_hold_music(call_id, pid)
        assert released.operation.type == calls_pb2.OPERATION_TYPE_STOP_HOLD_MUSIC
        await eventually(
            lambda: not emulator.calls[call_id].participants[pid].on_hold, what="off hold"
        )


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_clients_transfer_client_context_is_deprecated_and_refused(
    emulator: Emulator, gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, flavour: str
) -> None:
    call_id, _ = await _established(emulator, stub)
    async with open_client(flavour, f"127.0.0.1:{gateway.grpc_port}") as client:
        with (
            pytest.warns(DeprecationWarning, match="client_context"),
            pytest.raises(InvalidArgumentError) as info,
        ):
            await client.transfer_call(call_id, invitation("user", USER), client_context="x")
    assert info.value.reason == "NOT_SUPPORTED_BY_GRAPH"
