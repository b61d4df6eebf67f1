"""The call lifecycle actions: create, get, answer, reject, redirect, transfer, hang up,
keepAlive."""

from __future__ import annotations

from typing import Any

from commsgw import _permissions as perm
from commsgw._errors import InvalidArgument
from commsgw.graph import _validate as v
from commsgw.graph._action import (
    Action,
    GraphRequest,
    RequestConfig,
    Retry,
    ack_result,
    call_result,
    calls_path,
)
from commsgw.graph._join import meeting_id_join, parse_join_url
from graphcomms.v1 import calls_pb2

CALLS = "/communications/calls"

# Graph's create-call limits: one target peer-to-peer; a group call of up to 5 VoIP users.
MAX_CREATE_TARGETS = 5
MAX_REDIRECT_TARGETS = 25
REDIRECT_TIMEOUT_S = (15, 90)
MAX_PARTICIPANT_CAPACITY = 1000
_REJECT_REASONS = {
    calls_pb2.REJECT_REASON_UNSPECIFIED: "none",
    calls_pb2.REJECT_REASON_NONE: "none",
    calls_pb2.REJECT_REASON_BUSY: "busy",
    calls_pb2.REJECT_REASON_FORBIDDEN: "forbidden",
}


def _create(r: calls_pb2.CreateCallRequest, s: RequestConfig) -> GraphRequest:
    tenant = v.tenant(s, r.tenant_id)
    body: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.call",
        "callbackUri": v.callback_uri(s, r.callback_uri, required=True),
        "requestedModalities": v.modalities(r.requested_modalities, "requested_modalities"),
        "mediaConfig": v.service_hosted_media(r.pre_fetch_media),
        "tenantId": tenant,
    }
    meeting = r.WhichOneof("meeting")
    if meeting is not None:
        if r.targets:
            raise InvalidArgument(
                "give targets or a meeting to join, not both", reason="TOO_MANY_TARGETS"
            )
        join = (
            parse_join_url(r.join_url)
            if meeting == "join_url"
            else meeting_id_join(r.join_meeting_id.join_meeting_id, r.join_meeting_id.passcode)
        )
        if join.chat_info is not None:
            body["chatInfo"] = join.chat_info
        body["meetingInfo"] = join.meeting_info
        if join.tenant_id and not r.tenant_id:
            body["tenantId"] = join.tenant_id
    else:
        body["targets"] = v.invitations(r.targets, "targets", most=MAX_CREATE_TARGETS)
    if r.HasField("source"):
        body["source"] = v.participant_info(r.source, "source", allowed=("application_instance",))
    elif any(t.identity.HasField("phone") for t in r.targets):
        raise InvalidArgument(
            "a call to a phone number needs source.identity.application_instance (the resource "
            "account whose number it comes from)",
            reason="INVALID_IDENTITY",
        )
    if r.subject:
        body["subject"] = r.subject
    return GraphRequest("POST", CALLS, tenant, body)


def _get(r: calls_pb2.GetCallRequest, s: RequestConfig) -> GraphRequest:
    return GraphRequest("GET", calls_path(v.call_id(r.call_id)), v.tenant(s, r.tenant_id))


def _answer(r: calls_pb2.AnswerCallRequest, s: RequestConfig) -> GraphRequest:
    if not 0 <= r.participant_capacity <= MAX_PARTICIPANT_CAPACITY:
        raise InvalidArgument(
            f"participant_capacity must be 0 to {MAX_PARTICIPANT_CAPACITY}",
            reason="INVALID_PARTICIPANT_CAPACITY",
        )
    body: dict[str, Any] = {
        "callbackUri": v.callback_uri(s, r.callback_uri, required=True),
        "acceptedModalities": v.modalities(r.accepted_modalities, "accepted_modalities"),
        "mediaConfig": v.service_hosted_media(r.pre_fetch_media),
    }
    if r.participant_capacity:
        body["participantCapacity"] = r.participant_capacity
    call = v.call_id(r.call_id)
    return GraphRequest("POST", calls_path(call, "/answer"), v.tenant(s, r.tenant_id), body)


def _reject(r: calls_pb2.RejectCallRequest, s: RequestConfig) -> GraphRequest:
    reason = _REJECT_REASONS.get(r.reason)
    if reason is None:
        raise InvalidArgument("reason is not a known RejectReason", reason="INVALID_REJECT_REASON")
    body: dict[str, Any] = {"reason": reason}
    callback = v.callback_uri(s, r.callback_uri, required=False) if r.callback_uri else None
    if callback:
        body["callbackUri"] = callback
    call = v.call_id(r.call_id)
    return GraphRequest("POST", calls_path(call, "/reject"), v.tenant(s, r.tenant_id), body)


def _redirect(r: calls_pb2.RedirectCallRequest, s: RequestConfig) -> GraphRequest:
    body: dict[str, Any] = {
        "targets": v.invitations(r.targets, "targets", most=MAX_REDIRECT_TARGETS)
    }
    if r.timeout_seconds:
        lo, hi = REDIRECT_TIMEOUT_S
        body["timeout"] = v.seconds(r.timeout_seconds, "timeout_seconds", lo=lo, hi=hi)
    if r.callback_uri:
        body["callbackUri"] = v.https_url(r.callback_uri, "callback_uri", "INVALID_CALLBACK_URI")
    call = v.call_id(r.call_id)
    return GraphRequest("POST", calls_path(call, "/redirect"), v.tenant(s, r.tenant_id), body)


def _transfer(r: calls_pb2.TransferCallRequest, s: RequestConfig) -> GraphRequest:
    if not r.HasField("transfer_target"):
        raise InvalidArgument("transfer_target is required", reason="NO_TARGET")
    target = v.invitations([r.transfer_target], "transfer_target", most=1)[0]
    body: dict[str, Any] = {"transferTarget": target}
    if r.HasField("transferee"):
        body["transferee"] = v.participant_info(
            r.transferee, "transferee", allowed=("user", "phone", "application")
        )
    if r.client_context:  # deprecated in the contract: Graph's transfer has no clientContext
        raise InvalidArgument(
            "client_context cannot be sent: Graph's v1.0 transfer action takes no clientContext "
            "(leave it empty)",
            reason="NOT_SUPPORTED_BY_GRAPH",
        )
    call = v.call_id(r.call_id)
    return GraphRequest("POST", calls_path(call, "/transfer"), v.tenant(s, r.tenant_id), body)


def _hang_up(r: calls_pb2.HangUpCallRequest, s: RequestConfig) -> GraphRequest:
    return GraphRequest("DELETE", calls_path(v.call_id(r.call_id)), v.tenant(s, r.tenant_id))


def _keep_alive(r: calls_pb2.KeepAliveRequest, s: RequestConfig) -> GraphRequest:
    call = v.call_id(r.call_id)
    return GraphRequest("POST", calls_path(call, "/keepAlive"), v.tenant(s, r.tenant_id), {})


ACTIONS = (
    Action(
        "CreateCall",
        perm.CREATE,
        Retry.UNSAFE,
        _create,
        call_result(calls_pb2.CreateCallResponse),
    ),
    Action("GetCall", perm.CONTROL, Retry.IDEMPOTENT, _get, call_result(calls_pb2.GetCallResponse)),
    Action(
        "AnswerCall", perm.ANSWER, Retry.UNSAFE, _answer, ack_result(calls_pb2.AnswerCallResponse)
    ),
    Action(
        "RejectCall", perm.ANSWER, Retry.UNSAFE, _reject, ack_result(calls_pb2.RejectCallResponse)
    ),
    Action(
        "RedirectCall",
        perm.ANSWER,
        Retry.UNSAFE,
        _redirect,
        ack_result(calls_pb2.RedirectCallResponse),
    ),
    Action(
        "TransferCall",
        perm.CONTROL,
        Retry.UNSAFE,
        _transfer,
        ack_result(calls_pb2.TransferCallResponse),
    ),
    Action(
        "HangUpCall",
        perm.CONTROL,
        Retry.IDEMPOTENT,
        _hang_up,
        ack_result(calls_pb2.HangUpCallResponse),
    ),
    Action(
        "KeepAlive",
        perm.CONTROL,
        Retry.IDEMPOTENT,
        _keep_alive,
        ack_result(calls_pb2.KeepAliveResponse),
    ),
)
