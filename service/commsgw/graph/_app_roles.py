"""The Graph application permissions (app roles) each RPC needs, from Graph's v1.0 reference.

One entry per use: an RPC, or one kind of request of an RPC (CreateCall's). Its value lists the
permissions of which ONE must be granted (least privileged first); empty when Graph checks no
permission of its own for the request. Graph checks most call actions' permissions when the call
is created or answered, not on the action ("Permissions are checked when the call is created; no
additional permission check is made when calling this API", e.g. api/call-playprompt.md), so
those actions need none here: what they need is what created the call. Every calls permission is
application-only (no delegated tokens) and needs admin consent. App-hosted media would also
need Calls.AccessMedia.All; the gateway drives service-hosted media only.

`commsgw doctor` checks a token's `roles` against this table; docs/azure.md explains it.
"""

from __future__ import annotations

from typing import Final

INITIATE: Final = "Calls.Initiate.All"
INITIATE_GROUP: Final = "Calls.InitiateGroupCall.All"
JOIN_GROUP: Final = "Calls.JoinGroupCall.All"
JOIN_AS_GUEST: Final = "Calls.JoinGroupCallAsGuest.All"
ACCESS_MEDIA: Final = "Calls.AccessMedia.All"

GRAPH_PERMISSIONS: Final[dict[str, tuple[str, ...]]] = {
    # api/application-post-calls.md: one per kind of call created.
    "CreateCall (peer-to-peer)": (INITIATE,),
    "CreateCall (phone number, via an application instance)": (INITIATE,),
    "CreateCall (group call)": (INITIATE_GROUP,),
    "CreateCall (join a meeting)": (JOIN_GROUP, JOIN_AS_GUEST),
    # api/call-answer.md: joining a group call; with none of the calls permissions the
    # incoming call's source stays encrypted.
    "AnswerCall": (JOIN_GROUP, JOIN_AS_GUEST),
    "RejectCall": (),  # api/call-reject.md: none
    "RedirectCall": (INITIATE,),
    "TransferCall": (INITIATE,),
    "GetCall": (),
    "HangUpCall": (),
    "KeepAlive": (),
    "CancelMediaProcessing": (),
    "PlayPrompt": (),
    "RecordResponse": (ACCESS_MEDIA,),  # api/call-record.md
    "SubscribeToTone": (ACCESS_MEDIA,),  # api/call-subscribetotone.md
    "SendDtmfTones": (),
    "Mute": (),
    "Unmute": (),
    "UpdateRecordingStatus": (ACCESS_MEDIA, JOIN_GROUP),
    "ListParticipants": (),
    "InviteParticipants": (INITIATE_GROUP,),  # api/participant-invite.md
    "MuteParticipant": (JOIN_GROUP, JOIN_AS_GUEST),
    # api/participant-delete.md; the tenant must also allow the app to remove participants
    # (Set-CsApplicationMeetingConfiguration -AllowRemoveParticipantAppIds).
    "RemoveParticipant": (JOIN_GROUP, JOIN_AS_GUEST),
    # api/participant-startholdmusic.md, -stopholdmusic.md: none, checked when the app joined
    # or started the call.
    "StartHoldMusic": (),
    "StopHoldMusic": (),
    "GetOperation": (),  # Graph documents no permission for an operation's GET
}

__all__ = ["GRAPH_PERMISSIONS"]
