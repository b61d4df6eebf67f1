"""The participant actions: list, invite, mute, remove."""

from __future__ import annotations

from typing import Any

from commsgw import _permissions as perm
from commsgw._graphjson import items, read_participant
from commsgw.graph import _validate as v
from commsgw.graph._action import (
    Action,
    Answer,
    GraphRequest,
    RequestConfig,
    Retry,
    ack_result,
    calls_path,
    operation_result,
)
from graphcomms.v1 import calls_pb2

# Graph's participant-invite: up to 5 participants into a group call or meeting.
MAX_INVITE = 5


def _list(r: calls_pb2.ListParticipantsRequest, s: RequestConfig) -> GraphRequest:
    call = v.call_id(r.call_id)
    return GraphRequest("GET", calls_path(call, "/participants"), v.tenant(s, r.tenant_id))


def _listed(answer: Answer) -> calls_pb2.ListParticipantsResponse:
    body = answer.json("a participant collection")
    return calls_pb2.ListParticipantsResponse(
        participants=[read_participant(p) for p in items(body.get("value"))],
        graph_request_id=answer.request_id,
        client_request_id=answer.client_request_id,
    )


def _invite(r: calls_pb2.InviteParticipantsRequest, s: RequestConfig) -> GraphRequest:
    call = v.call_id(r.call_id)
    body = {
        "participants": v.invitations(r.participants, "participants", most=MAX_INVITE),
        "clientContext": v.client_context(r.client_context),
    }
    path = calls_path(call, "/participants/invite")
    return GraphRequest("POST", path, v.tenant(s, r.tenant_id), body)


def _mute(r: calls_pb2.MuteParticipantRequest, s: RequestConfig) -> GraphRequest:
    call = v.call_id(r.call_id)
    path = calls_path(call, f"/participants/{v.participant_id(r.participant_id)}/mute")
    body = {"clientContext": v.client_context(r.client_context)}
    return GraphRequest("POST", path, v.tenant(s, r.tenant_id), body)


def _remove(r: calls_pb2.RemoveParticipantRequest, s: RequestConfig) -> GraphRequest:
    call = v.call_id(r.call_id)
    path = calls_path(call, f"/participants/{v.participant_id(r.participant_id)}")
    return GraphRequest("DELETE", path, v.tenant(s, r.tenant_id))


def _start_hold_music(r: calls_pb2.StartHoldMusicRequest, s: RequestConfig) -> GraphRequest:
    call = v.call_id(r.call_id)
    path = calls_path(call, f"/participants/{v.participant_id(r.participant_id)}/startHoldMusic")
    body: dict[str, Any] = {"clientContext": v.client_context(r.client_context)}
    if r.HasField("custom_prompt"):
        body["customPrompt"] = {
            "@odata.type": "#microsoft.graph.mediaPrompt",
            "mediaInfo": v.media(r.custom_prompt, "custom_prompt"),
        }
    return GraphRequest("POST", path, v.tenant(s, r.tenant_id), body)


def _stop_hold_music(r: calls_pb2.StopHoldMusicRequest, s: RequestConfig) -> GraphRequest:
    call = v.call_id(r.call_id)
    path = calls_path(call, f"/participants/{v.participant_id(r.participant_id)}/stopHoldMusic")
    body = {"clientContext": v.client_context(r.client_context)}
    return GraphRequest("POST", path, v.tenant(s, r.tenant_id), body)


ACTIONS = (
    Action("ListParticipants", perm.PARTICIPANTS, Retry.IDEMPOTENT, _list, _listed),
    Action(
        "InviteParticipants",
        perm.PARTICIPANTS,
        Retry.UNSAFE,
        _invite,
        operation_result(
            calls_pb2.InviteParticipantsResponse, "#microsoft.graph.inviteParticipantsOperation"
        ),
    ),
    Action(
        "MuteParticipant",
        perm.PARTICIPANTS,
        Retry.UNSAFE,
        _mute,
        operation_result(
            calls_pb2.MuteParticipantResponse, "#microsoft.graph.muteParticipantOperation"
        ),
    ),
    Action(
        "StartHoldMusic",
        perm.PARTICIPANTS,
        Retry.UNSAFE,
        _start_hold_music,
        operation_result(
            calls_pb2.StartHoldMusicResponse, "#microsoft.graph.startHoldMusicOperation"
        ),
    ),
    Action(
        "StopHoldMusic",
        perm.PARTICIPANTS,
        Retry.UNSAFE,
        _stop_hold_music,
        operation_result(
            calls_pb2.StopHoldMusicResponse, "#microsoft.graph.stopHoldMusicOperation"
        ),
    ),
    Action(
        "RemoveParticipant",
        perm.PARTICIPANTS,
        Retry.IDEMPOTENT,
        _remove,
        ack_result(calls_pb2.RemoveParticipantResponse),
    ),
)
