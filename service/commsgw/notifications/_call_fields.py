"""The typed fields of a call notification: direction, source, targets, meeting and chat info,
modalities, callback URI, tone and, for an incoming call, the answer deadline.

Read as leniently as the rest of the parser: a field of the wrong JSON type is treated as
absent, an unknown enum value becomes UNSPECIFIED, nothing here raises.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf.timestamp_pb2 import Timestamp

from commsgw._graphjson import (
    items,
    read_chat_info,
    read_direction,
    read_invitation,
    read_meeting_info,
    read_modalities,
    read_participant_info,
    read_tone_info,
)
from commsgw.notifications._fields import as_str
from graphcomms.v1 import calls_pb2

__all__ = ["fill_call_fields"]

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
        cu.direction = read_direction(direction)
    if isinstance(source := get("source"), dict):
        read_participant_info(source, cu.source)
    for target in items(get("targets")):
        # Graph types targets as invitationParticipantInfo or participantInfo: both are read.
        read_invitation(target, cu.targets.add())
    read_meeting_info(get("meetingInfo"), cu.meeting_info)
    read_chat_info(get("chatInfo"), cu.chat_info)
    cu.requested_modalities.extend(read_modalities(get("requestedModalities")))
    read_tone_info(get("toneInfo"), cu.tone_info)
