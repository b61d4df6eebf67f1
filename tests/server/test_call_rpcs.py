"""Every call-control RPC working end to end: real gRPC to a real gateway, real MSAL and HTTPS
to the emulator, whose notifications come back through the gateway's webhook and
WatchOperations. Success, what Graph was sent, the events that follow, and Graph's error
answers (an ended call, an action its state does not allow)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_status import rpc_status

from commsgw.emulator import Emulator
from commsgw.server import Gateway
from graphcomms.v1 import call_types_pb2 as ct
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.callers import bearer, callers_file
from helpers.emulator import GraphUser
from helpers.gateway import gateway_settings, running_gateway
from helpers.notifications import Poster, op_notification
from helpers.polling import eventually
from helpers.status import error_details

# Faster than conftest's emulator: rings in 50 ms, media operations of 200 ms.
pytestmark = [pytest.mark.e2e, pytest.mark.emulator_timings(ring_s=0.05, media_op_seconds=0.2)]

USER = "11111111-2222-3333-4444-555555555555"
APP_INSTANCE = "66666666-7777-8888-9999-000000000000"
PROMPT = ct.MediaInfo(uri="https://cdn.example/menu.wav")
Event = calls_pb2.Event


def _user(uid: str = USER) -> ct.InvitationParticipantInfo:
    return ct.InvitationParticipantInfo(identity=ct.IdentitySet(user=ct.Identity(id=uid)))


class Events:
    """A WatchOperations stream of every event (operations and call updates) read in the
    background; `until` waits for one that matches."""

    def __init__(self, stub: calls_pb2_grpc.CallsServiceStub, **filters: Any) -> None:
        self.seen: list[Event] = []
        self._call = stub.WatchOperations(
            calls_pb2.WatchOperationsRequest(include_call_updates=True, **filters)
        )
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Events:
        first = await self._call.read()  # the START bookmark: registered
        assert first.WhichOneof("kind") == "bookmark"
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._call.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._task

    async def _read(self) -> None:
        while True:
            r = await self._call.read()
            if r is grpc.aio.EOF:
                return
            if r.WhichOneof("kind") == "event":
                self.seen.append(r.event)
                self._changed.set()

    async def until(self, match: Callable[[Event], bool], what: str, timeout: float = 10) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                for e in self.seen:
                    if match(e):
                        return e
                self._changed.clear()
                await self._changed.wait()

    def states(self, call_id: str) -> list[int]:
        return [
            e.call_update.state
            for e in self.seen
            if e.call_id == call_id and e.WhichOneof("kind") == "call_update"
        ]


def state(call_id: str, s: int) -> Callable[[Event], bool]:
    return lambda e: (
        e.call_id == call_id and e.WhichOneof("kind") == "call_update" and e.call_update.state == s
    )


def sent_body(emulator: Emulator, path: str) -> dict[str, Any]:
    """The JSON body of the last request Graph got on `path` (the emulator keeps them)."""
    sent = emulator.requests_to(path, "POST")
    assert sent, f"nothing sent to {path}"
    data: dict[str, Any] = json.loads(sent[-1].body)
    return data


async def _error(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), error_details(info.value)[0].reason


async def established_call(stub: calls_pb2_grpc.CallsServiceStub, events: Events) -> str:
    resp = await stub.CreateCall(calls_pb2.CreateCallRequest(targets=[_user()]), timeout=10)
    await events.until(state(resp.call.id, calls_pb2.CALL_STATE_ESTABLISHED), "established")
    return resp.call.id


# ---- call lifecycle ---------------------------------------------------------------------


async def test_create_call_to_a_user_reaches_established_through_the_gateway(
    emulator: Emulator, gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    async with Events(stub) as events:
        resp = await stub.CreateCall(
            calls_pb2.CreateCallRequest(targets=[_user()], subject="hello"), timeout=10
        )
        call = resp.call
        assert call.state == calls_pb2.CALL_STATE_ESTABLISHING
        assert call.direction == ct.CALL_DIRECTION_OUTGOING
        assert call.targets[0].identity.user.id == USER
        assert resp.graph_request_id and resp.client_request_id
        # The default callback is the gateway's own webhook: the events come back through it.
        assert call.callback_uri == gateway.public_webhook_url
        await events.until(state(call.id, calls_pb2.CALL_STATE_ESTABLISHED), "established")
        assert calls_pb2.CALL_STATE_RINGING in events.states(call.id)
    body = sent_body(emulator, r"/communications/calls$")
    assert body["mediaConfig"]["@odata.type"] == "#microsoft.graph.serviceHostedMediaConfig"
    assert body["requestedModalities"] == ["audio"]
    assert body["targets"][0]["identity"]["user"]["id"] == USER


async def test_create_call_to_a_phone_comes_from_an_application_instance(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    resp = await stub.CreateCall(
        calls_pb2.CreateCallRequest(
            targets=[
                ct.InvitationParticipantInfo(
                    identity=ct.IdentitySet(phone=ct.Identity(id="+14255550123"))
                )
            ],
            source=ct.ParticipantInfo(
                identity=ct.IdentitySet(application_instance=ct.Identity(id=APP_INSTANCE))
            ),
        ),
        timeout=10,
    )
    assert resp.call.id
    body = sent_body(emulator, r"/communications/calls$")
    assert body["source"]["identity"]["applicationInstance"]["id"] == APP_INSTANCE
    assert body["targets"][0]["identity"]["phone"]["id"] == "+14255550123"


async def test_create_call_joins_a_meeting_by_its_join_url_or_its_id(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    tenant, organizer = "72f988bf-86f1-41af-91ab-2d7cd011db47", USER
    url = (
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NTg0NmQ3%40thread.v2/0?context="
        f"%7b%22Tid%22%3a%22{tenant}%22%2c%22Oid%22%3a%22{organizer}%22%7d"
    )
    await stub.CreateCall(calls_pb2.CreateCallRequest(join_url=url), timeout=10)
    body = sent_body(emulator, r"/communications/calls$")
    assert body["chatInfo"]["threadId"] == "19:meeting_NTg0NmQ3@thread.v2"
    assert body["chatInfo"]["messageId"] == "0"
    assert body["meetingInfo"]["organizer"]["user"] == {"id": organizer, "tenantId": tenant}
    assert "targets" not in body
    await stub.CreateCall(
        calls_pb2.CreateCallRequest(
            join_meeting_id=ct.JoinMeetingId(join_meeting_id="123 456 789", passcode="pw")
        ),
        timeout=10,
    )
    body = sent_body(emulator, r"/communications/calls$")
    assert body["meetingInfo"] == {
        "@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo",
        "joinMeetingId": "123456789",
        "passcode": "pw",
    }


async def test_get_call_and_hang_up_then_the_ended_call_is_not_found(
    stub: calls_pb2_grpc.CallsServiceStub,
) -> None:
    async with Events(stub) as events:
        call_id = await established_call(stub, events)
        got = await stub.GetCall(calls_pb2.GetCallRequest(call_id=call_id), timeout=10)
        assert got.call.id == call_id
        assert got.call.state == calls_pb2.CALL_STATE_ESTABLISHED
        await stub.HangUpCall(calls_pb2.HangUpCallRequest(call_id=call_id), timeout=10)
        await events.until(state(call_id, calls_pb2.CALL_STATE_TERMINATED), "terminated")
    for rpc, req in (
        ("HangUpCall", calls_pb2.HangUpCallRequest(call_id=call_id)),
        ("KeepAlive", calls_pb2.KeepAliveRequest(call_id=call_id)),
        ("GetCall", calls_pb2.GetCallRequest(call_id=call_id)),
        ("PlayPrompt", calls_pb2.PlayPromptRequest(call_id=call_id, prompts=[PROMPT])),
    ):
        code, _ = await _error(getattr(stub, rpc)(req, timeout=10))
        assert code == grpc.StatusCode.NOT_FOUND, rpc


async def test_keep_alive(emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub) -> None:
    async with Events(stub) as events:
        call_id = await established_call(stub, events)
    resp = await stub.KeepAlive(calls_pb2.KeepAliveRequest(call_id=call_id), timeout=10)
    assert resp.graph_request_id
    assert emulator.requests_to(rf"/calls/{call_id}/keepAlive$", "POST")


async def test_an_incoming_call_is_typed_answered_and_established(
    emulator: Emulator, gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    async with Events(stub) as events:
        call_id = emulator.ring(gateway.public_webhook_url, caller="+14255550100")
        incoming = await events.until(state(call_id, calls_pb2.CALL_STATE_INCOMING), "incoming")
        cu = incoming.call_update
        assert incoming.change_type == calls_pb2.CHANGE_TYPE_CREATED
        assert cu.direction == ct.CALL_DIRECTION_INCOMING
        assert cu.source.identity.phone.id == "+14255550100"
        assert cu.answer_deadline.seconds - incoming.receive_time.seconds == 15
        await stub.AnswerCall(calls_pb2.AnswerCallRequest(call_id=call_id), timeout=10)
        await events.until(state(call_id, calls_pb2.CALL_STATE_ESTABLISHED), "established")
        # Answering again is a conflict with the call's state (Graph's 409).
        code, _ = await _error(
            stub.AnswerCall(calls_pb2.AnswerCallRequest(call_id=call_id), timeout=10)
        )
        assert code == grpc.StatusCode.ABORTED
    body = sent_body(emulator, rf"/calls/{call_id}/answer$")
    assert body["callbackUri"] == gateway.public_webhook_url
    assert body["acceptedModalities"] == ["audio"]


async def test_reject_and_redirect_end_an_incoming_call_for_the_bot(
    emulator: Emulator, gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    async with Events(stub) as events:
        rejected = emulator.ring(gateway.public_webhook_url)
        await events.until(state(rejected, calls_pb2.CALL_STATE_INCOMING), "incoming")
        await stub.RejectCall(
            calls_pb2.RejectCallRequest(call_id=rejected, reason=calls_pb2.REJECT_REASON_BUSY),
            timeout=10,
        )
        await events.until(
            lambda e: e.call_id == rejected and e.change_type == calls_pb2.CHANGE_TYPE_DELETED,
            "rejected call deleted",
        )
        assert sent_body(emulator, rf"/calls/{rejected}/reject$") == {"reason": "busy"}
        redirected = emulator.ring(gateway.public_webhook_url)
        await events.until(state(redirected, calls_pb2.CALL_STATE_INCOMING), "incoming")
        await stub.RedirectCall(
            calls_pb2.RedirectCallRequest(
                call_id=redirected, targets=[_user()], timeout_seconds=20
            ),
            timeout=10,
        )
        await events.until(
            lambda e: e.call_id == redirected and e.change_type == calls_pb2.CHANGE_TYPE_DELETED,
            "redirected call deleted",
        )
    body = sent_body(emulator, rf"/calls/{redirected}/redirect$")
    assert body["timeout"] == 20 and body["targets"][0]["identity"]["user"]["id"] == USER


async def test_transfer_goes_through_its_states_and_a_failed_one_comes_back(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    target = _user("22222222-3333-4444-5555-666666666666")
    async with Events(stub) as events:
        call_id = await established_call(stub, events)
        emulator.fail_next_transfer(call_id)
        await stub.TransferCall(
            calls_pb2.TransferCallRequest(call_id=call_id, transfer_target=target), timeout=10
        )
        back = await events.until(
            lambda e: (
                state(call_id, calls_pb2.CALL_STATE_ESTABLISHED)(e)
                and e.call_update.result_info.code == 500
            ),
            "the failed transfer",
        )
        assert back.call_update.result_info.subcode == 7000  # Graph spells it subCode here
        await stub.TransferCall(
            calls_pb2.TransferCallRequest(call_id=call_id, transfer_target=target), timeout=10
        )
        done = await events.until(state(call_id, calls_pb2.CALL_STATE_TERMINATED), "transferred")
        assert done.call_update.result_info.subcode == 7015
        states = events.states(call_id)
        assert states.index(calls_pb2.CALL_STATE_TRANSFERRING) < states.index(
            calls_pb2.CALL_STATE_TRANSFER_ACCEPTED
        )


# ---- media ------------------------------------------------------------------------------


async def _wait(stub: calls_pb2_grpc.CallsServiceStub, call_id: str, op_id: str) -> Any:
    return (
        await stub.WaitOperation(
            calls_pb2.WaitOperationRequest(call_id=call_id, operation_id=op_id), timeout=15
        )
    ).operation


async def test_record_response_completes_with_a_downloadable_recording(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    async with Events(stub) as events:
        call_id = await established_call(stub, events)
    resp = await stub.RecordResponse(
        calls_pb2.RecordResponseRequest(
            call_id=call_id,
            prompts=[PROMPT],
            max_record_duration_seconds=3,
            play_beep=False,
            stop_tones=[ct.TONE_POUND, ct.TONE_STAR],
            client_context="voicemail",
        ),
        timeout=10,
    )
    assert resp.operation.type == calls_pb2.OPERATION_TYPE_RECORD
    body = sent_body(emulator, rf"/calls/{call_id}/recordResponse$")
    assert body["stopTones"] == ["#", "*"]
    assert body["maxRecordDurationInSeconds"] == 3 and body["playBeep"] is False
    done = await _wait(stub, call_id, resp.operation.id)
    assert done.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert done.client_context == "voicemail"
    assert done.recording_location and done.recording_access_token  # trusted caller


async def test_tones_arrive_typed_after_subscribe_to_tone(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    async with Events(stub) as events:
        call_id = await established_call(stub, events)
        sub = await stub.SubscribeToTone(
            calls_pb2.SubscribeToToneRequest(call_id=call_id, client_context="dtmf"), timeout=10
        )
        assert sub.operation.type == calls_pb2.OPERATION_TYPE_SUBSCRIBE_TO_TONE
        assert sub.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
        emulator.press_tones(call_id, "5#")
        last = await events.until(
            lambda e: e.call_id == call_id and e.call_update.tone_info.tone == ct.TONE_POUND,
            "the pound tone",
        )
        tones = [
            (e.call_update.tone_info.sequence_id, e.call_update.tone_info.tone)
            for e in events.seen
            if e.call_id == call_id and e.call_update.HasField("tone_info")
        ]
        assert tones == [(1, ct.TONE_5), (2, ct.TONE_POUND)]
        assert last.change_type == calls_pb2.CHANGE_TYPE_UPDATED


async def test_dtmf_mute_unmute_and_recording_status(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    async with Events(stub) as events:
        call_id = await established_call(stub, events)
    dtmf = await stub.SendDtmfTones(
        calls_pb2.SendDtmfTonesRequest(
            call_id=call_id, tones=[ct.TONE_1, ct.TONE_STAR], delay_between_tones_ms=10
        ),
        timeout=10,
    )
    assert sent_body(emulator, rf"/calls/{call_id}/sendDtmfTones$")["tones"] == ["tone1", "star"]
    done = await _wait(stub, call_id, dtmf.operation.id)
    assert done.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert done.completion_reason == "completedSuccessfully"
    for rpc, req, kind in (
        ("Mute", calls_pb2.MuteRequest(call_id=call_id), calls_pb2.OPERATION_TYPE_MUTE_PARTICIPANT),
        (
            "Unmute",
            calls_pb2.UnmuteRequest(call_id=call_id),
            calls_pb2.OPERATION_TYPE_UNMUTE_PARTICIPANT,
        ),
        (
            "UpdateRecordingStatus",
            calls_pb2.UpdateRecordingStatusRequest(
                call_id=call_id, status=calls_pb2.RECORDING_STATUS_RECORDING
            ),
            calls_pb2.OPERATION_TYPE_UPDATE_RECORDING_STATUS,
        ),
    ):
        resp = await getattr(stub, rpc)(req, timeout=10)
        assert resp.operation.type == kind, rpc
        assert resp.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED, rpc
        assert resp.location.endswith(resp.operation.id), rpc
    assert sent_body(emulator, rf"/calls/{call_id}/updateRecordingStatus$")["status"] == "recording"


# ---- participants -----------------------------------------------------------------------


async def test_participants_listed_invited_muted_and_removed(
    emulator: Emulator, stub: calls_pb2_grpc.CallsServiceStub
) -> None:
    async with Events(stub) as events:
        call_id = await established_call(stub, events)
    listed = await stub.ListParticipants(
        calls_pb2.ListParticipantsRequest(call_id=call_id), timeout=10
    )
    before = {p.id for p in listed.participants}
    assert before
    guest = "33333333-4444-5555-6666-777777777777"
    invite = await stub.InviteParticipants(
        calls_pb2.InviteParticipantsRequest(call_id=call_id, participants=[_user(guest)]),
        timeout=10,
    )
    assert invite.operation.type == calls_pb2.OPERATION_TYPE_INVITE_PARTICIPANTS
    assert (await _wait(stub, call_id, invite.operation.id)).status == (
        calls_pb2.OPERATION_STATUS_COMPLETED
    )
    after = await stub.ListParticipants(
        calls_pb2.ListParticipantsRequest(call_id=call_id), timeout=10
    )
    joined = [p for p in after.participants if p.id not in before]
    assert [p.info.identity.user.id for p in joined] == [guest]
    pid = joined[0].id
    muted = await stub.MuteParticipant(
        calls_pb2.MuteParticipantRequest(call_id=call_id, participant_id=pid), timeout=10
    )
    assert muted.operation.type == calls_pb2.OPERATION_TYPE_MUTE_PARTICIPANT
    await stub.RemoveParticipant(
        calls_pb2.RemoveParticipantRequest(call_id=call_id, participant_id=pid), timeout=10
    )
    await eventually(
        lambda: emulator.requests_to(rf"/calls/{call_id}/participants/{pid}$", "DELETE"),
        what="the removal sent",
    )
    final = await stub.ListParticipants(
        calls_pb2.ListParticipantsRequest(call_id=call_id), timeout=10
    )
    assert pid not in {p.id for p in final.participants}


async def test_get_operation_asks_graph_when_the_log_does_not_know_it(
    stub: calls_pb2_grpc.CallsServiceStub,
) -> None:
    async with Events(stub) as events:
        call_id = await established_call(stub, events)
    # subscribeToTone answers completed at once: no notification follows, only Graph knows it.
    sub = await stub.SubscribeToTone(calls_pb2.SubscribeToToneRequest(call_id=call_id), timeout=10)
    got = await stub.GetOperation(
        calls_pb2.GetOperationRequest(call_id=call_id, operation_id=sub.operation.id), timeout=10
    )
    assert got.source == calls_pb2.OPERATION_SOURCE_GRAPH
    assert got.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert got.graph_request_id
    done = await _wait(stub, call_id, sub.operation.id)  # and a wait returns at once
    assert done.status == calls_pb2.OPERATION_STATUS_COMPLETED
    code, _ = await _error(
        stub.GetOperation(
            calls_pb2.GetOperationRequest(call_id=call_id, operation_id=USER), timeout=10
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_permissions_per_family_and_recording_tokens_only_to_recordings_readers(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    settings = gateway_settings(emulator, COMMSGW_CALLERS_FILE=str(callers_file(tmp_path)))
    async with (
        running_gateway(settings) as g,
        grpc.aio.insecure_channel(f"127.0.0.1:{g.grpc_port}") as ch,
    ):
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        user = GraphUser(emulator)
        try:
            call_id = await user.create_call(g.public_webhook_url)
            op_id = await user.record(call_id, "vm")
        finally:
            await user.aclose()
        # operations.watch alone may not play prompts (calls.media).
        code, reason = await _error(
            stub.PlayPrompt(
                calls_pb2.PlayPromptRequest(call_id=call_id, prompts=[PROMPT]),
                metadata=bearer("watcher"),
                timeout=10,
            )
        )
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_PERMITTED")
        wait = calls_pb2.WaitOperationRequest(call_id=call_id, operation_id=op_id)
        seen = await stub.WaitOperation(wait, metadata=bearer("watcher"), timeout=15)
        assert seen.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
        assert seen.operation.recording_location
        assert not seen.operation.recording_access_token
        full = await stub.WaitOperation(wait, metadata=bearer("recorder"), timeout=15)
        assert full.operation.recording_access_token


async def test_the_last_state_of_an_unfinished_wait_is_redacted_too(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    settings = gateway_settings(emulator, COMMSGW_CALLERS_FILE=str(callers_file(tmp_path)))
    call_id, op_id = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "2d3e4f5a-6b7c-4d8e-9fa0-1b2c3d4e5f6a"
    async with (
        running_gateway(settings) as g,
        grpc.aio.insecure_channel(f"127.0.0.1:{g.grpc_port}") as ch,
    ):
        async with Poster(emulator, g) as poster:
            note = op_notification(call_id, op_id, status="running")
            note["resourceData"]["recordingAccessToken"] = "rec-secret-42"
            assert (await poster.post([note])).status_code == 202
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        request = calls_pb2.WaitOperationRequest(
            call_id=call_id, operation_id=op_id, timeout=duration_pb2.Duration(nanos=200_000_000)
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.WaitOperation(request, metadata=bearer("watcher"), timeout=10)
        status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
        assert status is not None
        last = calls_pb2.Operation()
        assert any(d.Unpack(last) for d in status.details)
        assert last.id == op_id and not last.recording_access_token
