"""The media and in-call actions (service-hosted media): cancel, prompts, recordings, tones,
mute, recording status. Each answers a commsOperation."""

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
    calls_path,
    operation_result,
)
from graphcomms.v1 import calls_pb2

MAX_PLAY_PROMPTS = 20
MAX_RECORD_PROMPTS = 1
RECORD_TIMEOUT_S = (1, 120)
MAX_DTMF_DELAY_MS = 5000
_RECORDING_STATUSES = {
    calls_pb2.RECORDING_STATUS_NOT_RECORDING: "notRecording",
    calls_pb2.RECORDING_STATUS_RECORDING: "recording",
    calls_pb2.RECORDING_STATUS_FAILED: "failed",
}


def _action(r: Any, s: RequestConfig, name: str, body: dict[str, Any]) -> GraphRequest:
    """POST /communications/calls/{id}/{name} with `body` and the request's clientContext."""
    call = v.call_id(r.call_id)
    body["clientContext"] = v.client_context(r.client_context)
    return GraphRequest("POST", calls_path(call, f"/{name}"), v.tenant(s, r.tenant_id), body)


def _cancel(r: calls_pb2.CancelMediaProcessingRequest, s: RequestConfig) -> GraphRequest:
    return _action(r, s, "cancelMediaProcessing", {})


def _play(r: calls_pb2.PlayPromptRequest, s: RequestConfig) -> GraphRequest:
    prompts = v.prompts(r.prompts, least=1, most=MAX_PLAY_PROMPTS)
    return _action(r, s, "playPrompt", {"prompts": prompts})


def _record(r: calls_pb2.RecordResponseRequest, s: RequestConfig) -> GraphRequest:
    body: dict[str, Any] = {
        "prompts": v.prompts(r.prompts, least=0, most=MAX_RECORD_PROMPTS),
        "bargeInAllowed": r.barge_in_allowed,
    }
    lo, hi = RECORD_TIMEOUT_S
    for field, key in (
        ("initial_silence_timeout_seconds", "initialSilenceTimeoutInSeconds"),
        ("max_silence_timeout_seconds", "maxSilenceTimeoutInSeconds"),
        ("max_record_duration_seconds", "maxRecordDurationInSeconds"),
    ):
        if r.HasField(field):  # type: ignore[arg-type]
            body[key] = v.seconds(getattr(r, field), field, lo=lo, hi=hi)
    if r.HasField("play_beep"):
        body["playBeep"] = r.play_beep
    if r.stop_tones:
        body["stopTones"] = v.stop_tones(r.stop_tones)
    return _action(r, s, "recordResponse", body)


def _subscribe(r: calls_pb2.SubscribeToToneRequest, s: RequestConfig) -> GraphRequest:
    return _action(r, s, "subscribeToTone", {})


def _send_tones(r: calls_pb2.SendDtmfTonesRequest, s: RequestConfig) -> GraphRequest:
    body: dict[str, Any] = {"tones": v.tones(r.tones)}
    if not 0 <= r.delay_between_tones_ms <= MAX_DTMF_DELAY_MS:
        raise InvalidArgument(
            f"delay_between_tones_ms must be 0 to {MAX_DTMF_DELAY_MS}", reason="INVALID_DELAY"
        )
    if r.delay_between_tones_ms:
        body["delayBetweenTonesMs"] = r.delay_between_tones_ms
    return _action(r, s, "sendDtmfTones", body)


def _mute(r: calls_pb2.MuteRequest, s: RequestConfig) -> GraphRequest:
    return _action(r, s, "mute", {})


def _unmute(r: calls_pb2.UnmuteRequest, s: RequestConfig) -> GraphRequest:
    return _action(r, s, "unmute", {})


def _recording_status(r: calls_pb2.UpdateRecordingStatusRequest, s: RequestConfig) -> GraphRequest:
    status = _RECORDING_STATUSES.get(r.status)
    if status is None:
        raise InvalidArgument(
            "status must be RECORDING, NOT_RECORDING or FAILED", reason="INVALID_RECORDING_STATUS"
        )
    return _action(r, s, "updateRecordingStatus", {"status": status})


def _op(kind: str) -> str:
    return f"#microsoft.graph.{kind}Operation"


ACTIONS = (
    Action(
        "CancelMediaProcessing",
        perm.CANCEL,
        # Cancelling twice cancels nothing more: retried like an idempotent request.
        Retry.IDEMPOTENT,
        _cancel,
        operation_result(calls_pb2.CancelMediaProcessingResponse, _op("cancelMediaProcessing")),
    ),
    Action(
        "PlayPrompt",
        perm.MEDIA,
        Retry.UNSAFE,
        _play,
        operation_result(calls_pb2.PlayPromptResponse, _op("playPrompt")),
    ),
    Action(
        "RecordResponse",
        perm.MEDIA,
        Retry.UNSAFE,
        _record,
        operation_result(calls_pb2.RecordResponseResponse, _op("record")),
    ),
    Action(
        "SubscribeToTone",
        perm.MEDIA,
        Retry.UNSAFE,
        _subscribe,
        operation_result(calls_pb2.SubscribeToToneResponse, _op("subscribeToTone")),
    ),
    Action(
        "SendDtmfTones",
        perm.MEDIA,
        Retry.UNSAFE,
        _send_tones,
        operation_result(calls_pb2.SendDtmfTonesResponse, _op("sendDtmfTones")),
        # Graph's sendDtmfTones page: global cloud only (not US Gov L4/L5, not China).
        clouds=frozenset({"global"}),
    ),
    Action(
        "Mute",
        perm.CONTROL,
        Retry.UNSAFE,
        _mute,
        operation_result(calls_pb2.MuteResponse, _op("muteParticipant")),
    ),
    Action(
        "Unmute",
        perm.CONTROL,
        Retry.UNSAFE,
        _unmute,
        operation_result(calls_pb2.UnmuteResponse, _op("unmuteParticipant")),
    ),
    Action(
        "UpdateRecordingStatus",
        perm.MEDIA,
        Retry.UNSAFE,
        _recording_status,
        operation_result(calls_pb2.UpdateRecordingStatusResponse, _op("updateRecordingStatus")),
    ),
)
