"""Every unary RPC that reaches Graph, with every optional field it can set (and each choice of
its oneofs): what the conformance tests send and hold to Graph's metadata. `NOT_OFFERED` lists
the actions Graph's metadata binds to call and participant that no RPC sends, and why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from graphcomms.v1 import call_types_pb2 as ct
from graphcomms.v1 import calls_pb2

USER = "11111111-2222-3333-4444-555555555555"
USER_2 = "22222222-3333-4444-5555-666666666666"
APP = "33333333-4444-5555-6666-777777777777"
APP_INSTANCE = "66666666-7777-8888-9999-000000000000"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_CALL = "44444444-5555-6666-7777-888888888888"
CALLBACK = "https://bot.example/api/calls"
PROMPT = ct.MediaInfo(
    uri="https://cdn.example/menu.wav", resource_id="9b0e0c1a-1d2e-4f30-8a4b-5c6d7e8f9a0b"
)
JOIN_URL = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NTg0NmQ3%40thread.v2/0?context="
    f"%7b%22Tid%22%3a%22{TENANT}%22%2c%22Oid%22%3a%22{USER}%22%7d"
)


def identity(slot: str, ident: str) -> ct.IdentitySet:
    return ct.IdentitySet(**{slot: ct.Identity(id=ident, display_name="Someone", tenant_id=TENANT)})


def invitation(slot: str = "user", ident: str = USER, **extra: Any) -> ct.InvitationParticipantInfo:
    return ct.InvitationParticipantInfo(
        identity=identity(slot, ident),
        hidden=True,
        remove_from_default_audio_routing_group=True,
        **extra,
    )


@dataclass(frozen=True)
class Case:
    """An RPC's request with every field it can set. `action` is what the request must name in
    Graph's metadata: a bound action's name, or the method and type of a resource request."""

    rpc: str
    make: Callable[[str, str], Message]  # (call id, participant id) -> the request
    action: str
    # the call's state: "established", "incoming", "any", "none"; "held": established, with
    # the participant on hold
    needs: str = "established"


CASES: list[Case] = [
    Case(
        "CreateCall",
        lambda c, p: calls_pb2.CreateCallRequest(
            callback_uri=CALLBACK,
            targets=[invitation("user", USER)],
            requested_modalities=[ct.MODALITY_AUDIO],
            pre_fetch_media=[PROMPT],
            subject="hello",
            tenant_id="",
        ),
        "POST Collection(microsoft.graph.call)",
        "none",
    ),
    Case(
        "CreateCall",
        lambda c, p: calls_pb2.CreateCallRequest(
            targets=[invitation("phone", "+14255550123")],
            source=ct.ParticipantInfo(
                identity=identity("application_instance", APP_INSTANCE),
                endpoint_type="default",
                participant_id="src-1",
            ),
        ),
        "POST Collection(microsoft.graph.call)",
        "none",
    ),
    Case(
        "CreateCall",
        lambda c, p: calls_pb2.CreateCallRequest(join_url=JOIN_URL, subject="meeting"),
        "POST Collection(microsoft.graph.call)",
        "none",
    ),
    Case(
        "CreateCall",
        lambda c, p: calls_pb2.CreateCallRequest(
            join_meeting_id=ct.JoinMeetingId(join_meeting_id="123 456 789", passcode="pw")
        ),
        "POST Collection(microsoft.graph.call)",
        "none",
    ),
    Case(
        "CreateCall",
        lambda c, p: calls_pb2.CreateCallRequest(
            targets=[invitation("user", USER), invitation("user", USER_2)]
        ),
        "POST Collection(microsoft.graph.call)",
        "none",
    ),
    Case("GetCall", lambda c, p: calls_pb2.GetCallRequest(call_id=c), "GET microsoft.graph.call"),
    Case(
        "AnswerCall",
        lambda c, p: calls_pb2.AnswerCallRequest(
            call_id=c,
            callback_uri=CALLBACK,
            accepted_modalities=[ct.MODALITY_AUDIO],
            pre_fetch_media=[PROMPT],
            participant_capacity=200,
        ),
        "answer",
        "incoming",
    ),
    Case(
        "RejectCall",
        lambda c, p: calls_pb2.RejectCallRequest(
            call_id=c, reason=calls_pb2.REJECT_REASON_FORBIDDEN, callback_uri=CALLBACK
        ),
        "reject",
        "incoming",
    ),
    Case(
        "RedirectCall",
        lambda c, p: calls_pb2.RedirectCallRequest(
            call_id=c,
            targets=[invitation("user", USER), invitation("phone", "+14255550123")],
            timeout_seconds=30,
            callback_uri=CALLBACK,
        ),
        "redirect",
        "incoming",
    ),
    Case(
        "TransferCall",
        lambda c, p: calls_pb2.TransferCallRequest(
            call_id=c,
            transfer_target=invitation("user", USER_2, replaces_call_id=OTHER_CALL),
            transferee=ct.ParticipantInfo(
                identity=identity("user", USER), endpoint_type="voicemail", participant_id=p
            ),
        ),
        "transfer",
    ),
    Case(
        "HangUpCall",
        lambda c, p: calls_pb2.HangUpCallRequest(call_id=c),
        "DELETE microsoft.graph.call",
    ),
    Case("KeepAlive", lambda c, p: calls_pb2.KeepAliveRequest(call_id=c), "keepAlive", "any"),
    Case(
        "CancelMediaProcessing",
        lambda c, p: calls_pb2.CancelMediaProcessingRequest(call_id=c, client_context="ctx"),
        "cancelMediaProcessing",
    ),
    Case(
        "PlayPrompt",
        lambda c, p: calls_pb2.PlayPromptRequest(
            call_id=c, prompts=[PROMPT] * 2, client_context="c"
        ),
        "playPrompt",
    ),
    Case(
        "RecordResponse",
        lambda c, p: calls_pb2.RecordResponseRequest(
            call_id=c,
            prompts=[PROMPT],
            barge_in_allowed=True,
            initial_silence_timeout_seconds=5,
            max_silence_timeout_seconds=2,
            max_record_duration_seconds=10,
            play_beep=True,
            stop_tones=[ct.TONE_POUND, ct.TONE_STAR, ct.TONE_1, ct.TONE_A],
            client_context="rec",
        ),
        "recordResponse",
    ),
    Case(
        "SubscribeToTone",
        lambda c, p: calls_pb2.SubscribeToToneRequest(call_id=c, client_context="t"),
        "subscribeToTone",
    ),
    Case(
        "SendDtmfTones",
        lambda c, p: calls_pb2.SendDtmfTonesRequest(
            call_id=c,
            tones=[ct.TONE_1, ct.TONE_STAR, ct.TONE_POUND, ct.TONE_D, ct.TONE_FLASH],
            delay_between_tones_ms=10,
            client_context="d",
        ),
        "sendDtmfTones",
    ),
    Case("Mute", lambda c, p: calls_pb2.MuteRequest(call_id=c, client_context="m"), "mute"),
    Case("Unmute", lambda c, p: calls_pb2.UnmuteRequest(call_id=c, client_context="u"), "unmute"),
    Case(
        "UpdateRecordingStatus",
        lambda c, p: calls_pb2.UpdateRecordingStatusRequest(
            call_id=c, status=calls_pb2.RECORDING_STATUS_RECORDING, client_context="r"
        ),
        "updateRecordingStatus",
    ),
    Case(
        "ListParticipants",
        lambda c, p: calls_pb2.ListParticipantsRequest(call_id=c),
        "GET Collection(microsoft.graph.participant)",
    ),
    Case(
        "InviteParticipants",
        lambda c, p: calls_pb2.InviteParticipantsRequest(
            call_id=c,
            participants=[invitation("user", USER_2, participant_id="new-1")],
            client_context="i",
        ),
        "invite",
    ),
    Case(
        "MuteParticipant",
        lambda c, p: calls_pb2.MuteParticipantRequest(
            call_id=c, participant_id=p, client_context="x"
        ),
        "mute",
    ),
    Case(
        "StartHoldMusic",
        lambda c, p: calls_pb2.StartHoldMusicRequest(
            call_id=c, participant_id=p, custom_prompt=PROMPT, client_context="h"
        ),
        "startHoldMusic",
    ),
    Case(
        "StopHoldMusic",
        lambda c, p: calls_pb2.StopHoldMusicRequest(
            call_id=c, participant_id=p, client_context="s"
        ),
        "stopHoldMusic",
        "held",
    ),
    Case(
        "RemoveParticipant",
        lambda c, p: calls_pb2.RemoveParticipantRequest(call_id=c, participant_id=p),
        "DELETE microsoft.graph.participant",
    ),
]

# Actions Graph's v1.0 metadata binds to call, Collection(call), participant or
# Collection(participant) that no RPC sends, and why.
NOT_OFFERED: dict[str, str] = {
    "addLargeGalleryView": "a Teams meeting's large gallery view needs app-hosted video; the "
    "gateway offers service-hosted media, audio only",
    "changeScreenSharingRole": "screen sharing needs app-hosted media (video-based screen "
    "sharing); the gateway offers service-hosted media, audio only",
    "logTeleconferenceDeviceQuality": "bound to the calls collection, for teleconference "
    "devices reporting their media quality; a calling bot has no device media to report",
}


def target_of(method: str, path: str) -> str:
    """What a Graph request names, in the terms of `Case.action`."""
    from commsgw._graphmeta import resolve

    found = resolve(path)
    if getattr(found, "action", None) is not None:
        return found.action.name  # type: ignore[union-attr]
    return f"{method} {getattr(found, 'type', found)}"
