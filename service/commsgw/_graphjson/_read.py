"""Graph's resources (as an action answers them, or in a notification) as contract messages."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from commsgw._graphjson._lenient import INT64, flag, get_ci, integer, items, obj, text
from commsgw._ids import normalize_guid, normalize_id
from graphcomms.v1 import call_types_pb2, calls_pb2

# Keys are the lower-cased @odata.type without "#" and without the "microsoft.graph." prefix.
OPERATION_TYPES: Final[dict[str, calls_pb2.OperationType.ValueType]] = {
    "addlargegalleryviewoperation": calls_pb2.OPERATION_TYPE_ADD_LARGE_GALLERY_VIEW,
    "cancelmediaprocessingoperation": calls_pb2.OPERATION_TYPE_CANCEL_MEDIA_PROCESSING,
    "inviteparticipantsoperation": calls_pb2.OPERATION_TYPE_INVITE_PARTICIPANTS,
    "muteparticipantoperation": calls_pb2.OPERATION_TYPE_MUTE_PARTICIPANT,
    "playpromptoperation": calls_pb2.OPERATION_TYPE_PLAY_PROMPT,
    "recordoperation": calls_pb2.OPERATION_TYPE_RECORD,
    "senddtmftonesoperation": calls_pb2.OPERATION_TYPE_SEND_DTMF_TONES,
    "startholdmusicoperation": calls_pb2.OPERATION_TYPE_START_HOLD_MUSIC,
    "stopholdmusicoperation": calls_pb2.OPERATION_TYPE_STOP_HOLD_MUSIC,
    "subscribetotoneoperation": calls_pb2.OPERATION_TYPE_SUBSCRIBE_TO_TONE,
    "unmuteparticipantoperation": calls_pb2.OPERATION_TYPE_UNMUTE_PARTICIPANT,
    "updaterecordingstatusoperation": calls_pb2.OPERATION_TYPE_UPDATE_RECORDING_STATUS,
}

_OPERATION_STATUSES: Final[dict[str, calls_pb2.OperationStatus.ValueType]] = {
    "notstarted": calls_pb2.OPERATION_STATUS_NOT_STARTED,
    "running": calls_pb2.OPERATION_STATUS_RUNNING,
    "completed": calls_pb2.OPERATION_STATUS_COMPLETED,
    "failed": calls_pb2.OPERATION_STATUS_FAILED,
}

_CALL_STATES: Final[dict[str, calls_pb2.CallState.ValueType]] = {
    "incoming": calls_pb2.CALL_STATE_INCOMING,
    "establishing": calls_pb2.CALL_STATE_ESTABLISHING,
    "ringing": calls_pb2.CALL_STATE_RINGING,
    "established": calls_pb2.CALL_STATE_ESTABLISHED,
    "hold": calls_pb2.CALL_STATE_HOLD,
    "transferring": calls_pb2.CALL_STATE_TRANSFERRING,
    "transferaccepted": calls_pb2.CALL_STATE_TRANSFER_ACCEPTED,
    "redirecting": calls_pb2.CALL_STATE_REDIRECTING,
    "terminating": calls_pb2.CALL_STATE_TERMINATING,
    "terminated": calls_pb2.CALL_STATE_TERMINATED,
}

_DIRECTIONS: Final[dict[str, call_types_pb2.CallDirection.ValueType]] = {
    "incoming": call_types_pb2.CALL_DIRECTION_INCOMING,
    "outgoing": call_types_pb2.CALL_DIRECTION_OUTGOING,
}

_MODALITIES: Final[dict[str, call_types_pb2.Modality.ValueType]] = {
    "audio": call_types_pb2.MODALITY_AUDIO,
    "video": call_types_pb2.MODALITY_VIDEO,
    "videobasedscreensharing": call_types_pb2.MODALITY_VIDEO_BASED_SCREEN_SHARING,
    "data": call_types_pb2.MODALITY_DATA,
}

_TONES: Final[dict[str, call_types_pb2.Tone.ValueType]] = {
    **{f"tone{d}": getattr(call_types_pb2, f"TONE_{d}") for d in range(10)},
    "star": call_types_pb2.TONE_STAR,
    "pound": call_types_pb2.TONE_POUND,
    "a": call_types_pb2.TONE_A,
    "b": call_types_pb2.TONE_B,
    "c": call_types_pb2.TONE_C,
    "d": call_types_pb2.TONE_D,
    "flash": call_types_pb2.TONE_FLASH,
}

_IDENTITY_SLOTS: Final = ("user", "phone", "application", "application_instance", "guest")
_GRAPH_SLOT: Final = {"application_instance": "applicationInstance"}


@lru_cache(maxsize=512)
def short_type_name(odata_type: str) -> str:
    """ "#microsoft.graph.recordOperation" -> "recordoperation" (any case, prefix optional)."""
    name = odata_type.strip().lstrip("#").lower()
    return name.removeprefix("microsoft.graph.")


def _enum(table: dict[str, Any], value: Any) -> Any:
    return table.get(value.strip().lower(), 0) if isinstance(value, str) else 0


def call_state(value: Any) -> calls_pb2.CallState.ValueType:
    """A call state name in any case ("Established" in the legacy format)."""
    state: calls_pb2.CallState.ValueType = _enum(_CALL_STATES, value)
    return state


def read_result_info(value: Any, target: calls_pb2.ResultInfo) -> None:
    """Fill `target` from Graph's resultInfo (codes may be strings; `subCode` is seen too)."""
    if not isinstance(value, dict):
        return
    target.SetInParent()
    target.code = integer(get_ci(value, "code"))
    target.subcode = integer(get_ci(value, "subcode"))
    target.message = text(value.get("message"))


def read_operation(data: dict[str, Any], default_type: str = "") -> calls_pb2.Operation:
    """A commsOperation (an action's answer or a notification's resourceData)."""
    odata_type = text(data.get("@odata.type")) or default_type
    raw_id = text(data.get("id"))
    op = calls_pb2.Operation(
        id=normalize_id(raw_id) if raw_id.strip() else "",
        type=OPERATION_TYPES.get(short_type_name(odata_type), calls_pb2.OPERATION_TYPE_UNSPECIFIED),
        status=_enum(_OPERATION_STATUSES, data.get("status")),
        client_context=text(data.get("clientContext")),
        odata_type=odata_type,
        completion_reason=text(data.get("completionReason")),
        recording_location=text(data.get("recordingLocation")),
        recording_access_token=text(data.get("recordingAccessToken")),
    )
    read_result_info(data.get("resultInfo"), op.result_info)
    return op


def _read_identity(value: Any, target: call_types_pb2.Identity) -> None:
    target.SetInParent()
    target.id = text(value.get("id"))
    target.display_name = text(value.get("displayName"))
    target.tenant_id = text(value.get("tenantId"))


def read_identity_set(value: Any, target: call_types_pb2.IdentitySet) -> None:
    """Fill `target` from an identitySet; slots that are absent or null stay unset."""
    data = obj(value)
    if not data:
        return
    target.SetInParent()
    for slot in _IDENTITY_SLOTS:
        sub = data.get(_GRAPH_SLOT.get(slot, slot))
        if isinstance(sub, dict):
            _read_identity(sub, getattr(target, slot))


def read_participant_info(value: Any, target: call_types_pb2.ParticipantInfo) -> None:
    data = obj(value)
    if not data:
        return
    target.SetInParent()
    read_identity_set(data.get("identity"), target.identity)
    target.endpoint_type = text(data.get("endpointType"))
    target.region = text(data.get("region"))
    target.language_id = text(data.get("languageId"))
    target.participant_id = text(data.get("participantId"))


def read_invitation(value: Any, target: call_types_pb2.InvitationParticipantInfo) -> None:
    """An invitationParticipantInfo (Graph sometimes sends a participantInfo in its place)."""
    data = obj(value)
    target.SetInParent()
    read_identity_set(data.get("identity"), target.identity)
    target.replaces_call_id = text(data.get("replacesCallId"))
    target.hidden = flag(data.get("hidden"))
    target.participant_id = text(data.get("participantId"))
    target.remove_from_default_audio_routing_group = flag(
        data.get("removeFromDefaultAudioRoutingGroup")
    )


def read_chat_info(value: Any, target: call_types_pb2.ChatInfo) -> None:
    data = obj(value)
    if not data:
        return
    target.SetInParent()
    target.thread_id = text(data.get("threadId"))
    target.message_id = text(data.get("messageId"))
    target.reply_chain_message_id = text(data.get("replyChainMessageId"))


def read_meeting_info(value: Any, target: call_types_pb2.MeetingInfo) -> None:
    """organizerMeetingInfo -> organizer, joinMeetingIdMeetingInfo -> join_meeting_id; other
    kinds (tokenMeetingInfo) leave `target` unset."""
    data = obj(value)
    kind = short_type_name(text(data.get("@odata.type")))
    organizer = data.get("organizer")
    join_id = data.get("joinMeetingId")
    if kind == "organizermeetinginfo" or (not kind and isinstance(organizer, dict)):
        read_identity_set(organizer, target.organizer)
    elif kind == "joinmeetingidmeetinginfo" or (not kind and join_id is not None):
        j = target.join_meeting_id
        j.SetInParent()
        j.join_meeting_id = "".join(text(join_id).split())  # "123 456 789" as shown
        j.passcode = text(data.get("passcode"))


def read_tone_info(value: Any, target: call_types_pb2.ToneInfo) -> None:
    data = obj(value)
    if not data:
        return
    target.SetInParent()
    target.sequence_id = integer(data.get("sequenceId"), INT64)
    target.tone = _enum(_TONES, data.get("tone"))


def read_modalities(value: Any) -> list[call_types_pb2.Modality.ValueType]:
    """requestedModalities: each name in any case (non-strings skipped, unknown ones
    UNSPECIFIED)."""
    if not isinstance(value, list):
        return []
    return [_enum(_MODALITIES, v) for v in value if isinstance(v, str)]


def read_direction(value: Any) -> call_types_pb2.CallDirection.ValueType:
    direction: call_types_pb2.CallDirection.ValueType = _enum(_DIRECTIONS, value)
    return direction


def read_call(data: dict[str, Any]) -> calls_pb2.Call:
    """A call resource."""
    call = calls_pb2.Call(
        id=normalize_id(text(data.get("id"))),
        state=call_state(data.get("state")),
        direction=read_direction(data.get("direction")),
        callback_uri=text(data.get("callbackUri")),
        tenant_id=normalize_guid(text(data.get("tenantId"))) or text(data.get("tenantId")),
        subject=text(data.get("subject")),
        my_participant_id=text(data.get("myParticipantId")),
        odata_type=text(data.get("@odata.type")),
    )
    read_participant_info(data.get("source"), call.source)
    for target in items(data.get("targets")):
        read_invitation(target, call.targets.add())
    call.requested_modalities.extend(read_modalities(data.get("requestedModalities")))
    read_meeting_info(data.get("meetingInfo"), call.meeting_info)
    read_chat_info(data.get("chatInfo"), call.chat_info)
    read_result_info(data.get("resultInfo"), call.result_info)
    return call


def read_participant(data: dict[str, Any]) -> call_types_pb2.Participant:
    """A participant resource."""
    p = call_types_pb2.Participant(
        id=text(data.get("id")),
        is_muted=flag(data.get("isMuted")),
        is_in_lobby=flag(data.get("isInLobby")),
    )
    read_participant_info(data.get("info"), p.info)
    return p
