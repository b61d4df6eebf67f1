"""The typed fields of a call notification: direction, source, targets, meeting and chat info,
modalities, callback URI, tone and, for an incoming call, the answer deadline.

Read as leniently as the rest of the parser: a field of the wrong JSON type is treated as
absent, an unknown enum value becomes UNSPECIFIED, nothing here raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from commsgw.notifications._fields import as_bool, as_int64, as_str
from commsgw.notifications._resources import short_type_name
from graphcomms.v1 import call_types_pb2, calls_pb2

__all__ = ["fill_call_fields"]

E = TypeVar("E", bound=int)

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

# Graph's `tone` enum (resources/toneinfo): tone0..tone9, star, pound, a..d, flash.
_TONES: Final[dict[str, call_types_pb2.Tone.ValueType]] = {
    **{f"tone{d}": call_types_pb2.Tone.Value(f"TONE_{d}") for d in range(10)},
    "star": call_types_pb2.TONE_STAR,
    "pound": call_types_pb2.TONE_POUND,
    "a": call_types_pb2.TONE_A,
    "b": call_types_pb2.TONE_B,
    "c": call_types_pb2.TONE_C,
    "d": call_types_pb2.TONE_D,
    "flash": call_types_pb2.TONE_FLASH,
}

# identitySet slot -> field of IdentitySet.
_IDENTITY_SLOTS: Final = (
    ("user", "user"),
    ("phone", "phone"),
    ("application", "application"),
    ("applicationInstance", "application_instance"),
    ("guest", "guest"),
)

# How long Graph waits for answer, reject or redirect of an incoming call before it drops it:
# "The current timeout value is 15 seconds for regular scenarios and 5 seconds for policy-based
# recording scenarios" (Graph v1.0 reference, call: answer, learn.microsoft.com/graph/api/
# call-answer). A policy-based recording invitation is the one whose incomingContext names the
# observed participant (the recorded user), as in that page's policy-based recording example.
_ANSWER_WITHIN_S: Final = 15
_ANSWER_WITHIN_RECORDING_S: Final = 5


# The keys of a call resource read below the state (callbackUri and incomingContext aside).
_FIELDS: Final = frozenset(
    (
        "direction",
        "source",
        "targets",
        "meetingInfo",
        "chatInfo",
        "requestedModalities",
        "toneInfo",
    )
)


def _enum(value: Any, table: Mapping[str, E], unknown: E) -> E:
    """A string enum value, any case; `unknown` when not a string or not in `table`."""
    return table.get(value.lower(), unknown) if isinstance(value, str) else unknown


def _identity_set(value: Any, target: call_types_pb2.IdentitySet) -> None:
    if not isinstance(value, dict):
        return
    target.SetInParent()
    for key, name in _IDENTITY_SLOTS:
        ident = value.get(key)
        if isinstance(ident, dict):
            slot: call_types_pb2.Identity = getattr(target, name)
            slot.SetInParent()
            slot.id = as_str(ident.get("id"))
            slot.display_name = as_str(ident.get("displayName"))
            slot.tenant_id = as_str(ident.get("tenantId"))


def _participant_info(value: dict[str, Any], target: call_types_pb2.ParticipantInfo) -> None:
    target.SetInParent()
    _identity_set(value.get("identity"), target.identity)
    target.endpoint_type = as_str(value.get("endpointType"))
    target.region = as_str(value.get("region"))
    target.language_id = as_str(value.get("languageId"))
    target.participant_id = as_str(value.get("participantId"))


def _invitation_info(
    value: dict[str, Any], target: call_types_pb2.InvitationParticipantInfo
) -> None:
    # Graph types targets as invitationParticipantInfo or participantInfo: both are read.
    _identity_set(value.get("identity"), target.identity)
    target.replaces_call_id = as_str(value.get("replacesCallId"))
    target.hidden = as_bool(value.get("hidden"))
    target.participant_id = as_str(value.get("participantId"))
    target.remove_from_default_audio_routing_group = as_bool(
        value.get("removeFromDefaultAudioRoutingGroup")
    )


def _meeting_info(value: Any, target: call_types_pb2.MeetingInfo) -> None:
    """organizerMeetingInfo -> organizer, joinMeetingIdMeetingInfo -> join_meeting_id; an
    untyped one by its keys; tokenMeetingInfo (no field in the contract) stays unset."""
    if not isinstance(value, dict):
        return
    t = value.get("@odata.type")
    kind = short_type_name(t) if isinstance(t, str) else ""
    organizer = value.get("organizer")
    join_id = value.get("joinMeetingId")
    if kind == "organizermeetinginfo" or (not kind and isinstance(organizer, dict)):
        _identity_set(organizer, target.organizer)
    elif kind == "joinmeetingidmeetinginfo" or (not kind and join_id is not None):
        j = target.join_meeting_id
        j.SetInParent()
        j.join_meeting_id = "".join(as_str(join_id).split())
        j.passcode = as_str(value.get("passcode"))


def _tone_info(value: Any, target: call_types_pb2.ToneInfo) -> None:
    if not isinstance(value, dict):
        return
    target.SetInParent()
    target.sequence_id = as_int64(value.get("sequenceId"))
    target.tone = _enum(value.get("tone"), _TONES, call_types_pb2.TONE_UNSPECIFIED)


def fill_call_fields(
    data: dict[str, Any],
    notification: dict[str, Any],
    cu: calls_pb2.CallUpdate,
    receive_time: Timestamp,
) -> None:
    """Fill `cu` (its state already set) from the call resource `data` of `notification`."""
    # The call's own callbackUri; older notifications carry it beside resourceData.
    callback = data.get("callbackUri", notification.get("callbackUri"))
    if callback is not None:
        cu.callback_uri = as_str(callback)
    if cu.state == calls_pb2.CALL_STATE_INCOMING:
        context = data.get("incomingContext")
        recording = isinstance(context, dict) and bool(
            as_str(context.get("observedParticipantId")).strip()
        )
        cu.answer_deadline.seconds = receive_time.seconds + (
            _ANSWER_WITHIN_RECORDING_S if recording else _ANSWER_WITHIN_S
        )
        cu.answer_deadline.nanos = receive_time.nanos
    if _FIELDS.isdisjoint(data):
        return  # most call notifications carry only a state
    get = data.get
    if (direction := get("direction")) is not None:
        cu.direction = _enum(direction, _DIRECTIONS, call_types_pb2.CALL_DIRECTION_UNSPECIFIED)
    if isinstance(source := get("source"), dict):
        _participant_info(source, cu.source)
    if isinstance(targets := get("targets"), list):
        for t in targets:
            if isinstance(t, dict):
                _invitation_info(t, cu.targets.add())
    if (meeting := get("meetingInfo")) is not None:
        _meeting_info(meeting, cu.meeting_info)
    if isinstance(chat := get("chatInfo"), dict):
        cu.chat_info.SetInParent()
        cu.chat_info.thread_id = as_str(chat.get("threadId"))
        cu.chat_info.message_id = as_str(chat.get("messageId"))
        cu.chat_info.reply_chain_message_id = as_str(chat.get("replyChainMessageId"))
    if isinstance(modalities := get("requestedModalities"), list):
        cu.requested_modalities.extend(
            _enum(m, _MODALITIES, call_types_pb2.MODALITY_UNSPECIFIED)
            for m in modalities
            if isinstance(m, str)
        )
    if (tone := get("toneInfo")) is not None:
        _tone_info(tone, cu.tone_info)
