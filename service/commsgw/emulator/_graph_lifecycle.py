"""The call lifecycle of the fake Graph: the create-call body, and the actions answer, reject,
redirect, transfer and keepAlive (their notifications: see ``_lifecycle``)."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from commsgw.emulator import _validate
from commsgw.emulator._calls import Call, new_id
from commsgw.emulator._errors import bad_request
from commsgw.emulator._graph_common import INCOMING, ActionSpec, CallAction, accepted
from commsgw.emulator._state import EmulatorState

MAX_CALL_TARGETS = 5  # "The group call ... supports up to 5 VoIP users."
MAX_REDIRECT_TARGETS = 25  # "We support up to 25 targets for simulring."
REJECT_REASONS = ("none", "busy", "forbidden")  # the reference writes None, Busy, Forbidden
_MEETING_INFOS = (
    "#microsoft.graph.organizerMeetingInfo",
    "#microsoft.graph.joinMeetingIdMeetingInfo",
    "#microsoft.graph.tokenMeetingInfo",
)
_SOURCE_SLOTS = ("applicationInstance", "application")


def _meeting(body: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """chatInfo and meetingInfo of a meeting join (organizerMeetingInfo + chatInfo,
    joinMeetingIdMeetingInfo or tokenMeetingInfo), or (None, None)."""
    chat, meeting = body.get("chatInfo"), body.get("meetingInfo")
    if chat is None and meeting is None:
        return None, None
    if not isinstance(meeting, dict):
        raise bad_request("meetingInfo is required to join a meeting.")
    kind = _validate.one_of(meeting.get("@odata.type"), _MEETING_INFOS, "meetingInfo.@odata.type")
    if kind == _MEETING_INFOS[0]:
        _validate.identity_set(meeting.get("organizer"), "meetingInfo.organizer", ("user",))
        if not isinstance(chat, dict) or not isinstance(chat.get("threadId"), str):
            raise bad_request("chatInfo.threadId is required with organizerMeetingInfo.")
    elif kind == _MEETING_INFOS[1]:
        meeting_id = meeting.get("joinMeetingId")
        if not isinstance(meeting_id, str) or not meeting_id.replace(" ", "").isdigit():
            raise bad_request("meetingInfo.joinMeetingId must be the meeting's numeric id.")
        _validate.optional_str(meeting, "passcode")
    elif not isinstance(meeting.get("token"), str):
        raise bad_request("meetingInfo.token is required.")
    if chat is None:  # Graph fills chatInfo in even when the join did not give it
        thread = f"19:meeting_{secrets.token_urlsafe(24)}@thread.v2"
        chat = {"@odata.type": "#microsoft.graph.chatInfo", "threadId": thread, "messageId": "0"}
    return chat, meeting


def new_call(state: EmulatorState, body: dict[str, Any], claims: dict[str, Any]) -> Call:
    """The call a ``POST /communications/calls`` body asks for (400 when Graph would refuse
    it). Without targets, chatInfo or meetingInfo it is a new group call (call resource page)."""
    callback = _validate.callback_uri(body.get("callbackUri"), required=True)
    raw_targets = body.get("targets")
    targets = (
        _validate.invitations(raw_targets, "targets", 1, MAX_CALL_TARGETS) if raw_targets else []
    )
    source = body.get("source")
    if source is not None:
        if not isinstance(source, dict):
            raise bad_request("source must be a participantInfo.")
        _validate.identity_set(source.get("identity"), "source.identity", _SOURCE_SLOTS)
    calls_phone = any("phone" in (t.get("identity") or {}) for t in targets)
    if calls_phone and "applicationInstance" not in ((source or {}).get("identity") or {}):
        raise bad_request(
            "Calling a phone number needs source.identity.applicationInstance "
            "(an application instance with a phone number)."
        )
    chat, meeting = _meeting(body)
    _validate.optional_str(body, "tenantId")
    kind = "meeting" if meeting is not None else "p2p" if len(targets) == 1 else "group"
    return Call(
        id=new_id(),
        tenant_id=str(claims["tid"]),
        client_id=str(claims.get("appid", state.config.client_id)),
        callback_uri=callback,
        request=body,
        kind=kind,
        source=source,
        targets=[] if meeting is not None else targets,
        requested_modalities=_validate.modalities(
            body.get("requestedModalities"), "requestedModalities", required=False
        ),
        media_config=_validate.media_config(body.get("mediaConfig"), required=False),
        chat_info=chat,
        meeting_info=meeting,
        subject=_validate.optional_str(body, "subject"),
    )


def _answer(action: CallAction) -> web.Response:
    body = action.body
    callback = _validate.callback_uri(body.get("callbackUri"), required=False)
    modalities = _validate.modalities(
        body.get("acceptedModalities"), "acceptedModalities", required=True
    )
    media_config = _validate.media_config(body.get("mediaConfig"), required=True)
    _validate.int_in_range(body, "participantCapacity", 1, None, 1)
    action.state.flow.answer(action.call, callback, media_config, modalities)
    return accepted()


def _reject(action: CallAction) -> web.Response:
    reason = action.body.get("reason")
    if reason is not None:
        _validate.one_of(reason, REJECT_REASONS, "reason")
    callback = _validate.callback_uri(action.body.get("callbackUri"), required=False)
    action.state.flow.reject(action.call, callback)
    return accepted()


def _redirect(action: CallAction) -> web.Response:
    body = action.body
    targets = _validate.invitations(body.get("targets"), "targets", 1, MAX_REDIRECT_TARGETS)
    # "between 15 and 90 seconds inclusive ... 55 seconds for one target and 60 seconds for
    # multiple targets"
    timeout = _validate.int_in_range(body, "timeout", 15, 90, 55 if len(targets) == 1 else 60)
    callback = _validate.callback_uri(body.get("callbackUri"), required=False)
    action.state.flow.redirect(action.call, targets, timeout, callback)
    return accepted()


def _transfer(action: CallAction) -> web.Response:
    body = action.body
    target = _validate.invitation(body.get("transferTarget"), "transferTarget")
    transferee = body.get("transferee")
    if transferee is not None:
        _validate.participant_info(transferee, "transferee")
    elif action.call.kind != "p2p":
        # "transferee ... only needed when transfer from a group call" (and then required)
        raise bad_request("transferee is required to transfer from a group call or meeting.")
    action.state.flow.transfer(action.call, target)
    return accepted()


def _keep_alive(action: CallAction) -> web.Response:
    action.state.flow.keep_alive(action.call)
    return web.Response(status=200)


LIFECYCLE_ACTIONS: dict[str, ActionSpec] = {
    "answer": ActionSpec(_answer, INCOMING),
    "reject": ActionSpec(_reject, INCOMING),
    "redirect": ActionSpec(_redirect, INCOMING),
    "transfer": ActionSpec(_transfer),
    "keepAlive": ActionSpec(_keep_alive, states=None),
}
