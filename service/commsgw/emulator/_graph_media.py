"""The in-call actions of the fake Graph: prompts, recordings, tones, mute, recording status,
and the download of recordings (``recordingLocation``, authorized by ``recordingAccessToken``).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from commsgw._ids import normalize_guid
from commsgw.emulator import _validate
from commsgw.emulator._calls import new_id
from commsgw.emulator._errors import GraphError, not_found
from commsgw.emulator._graph_common import (
    ActionSpec,
    CallAction,
    call_url,
    operation_response,
)
from commsgw.emulator._recording import RecordSettings, synth_wav
from commsgw.emulator._state import EmulatorState

MAX_PROMPTS = 20  # "The maximum supported MediaPrompt collection size is 20."
RECORDING_STATUSES = ("recording", "notRecording", "failed")


def _play_prompt(action: CallAction) -> web.Response:
    _validate.prompts(action.body, required=True, max_count=MAX_PROMPTS)
    return _enqueue(action)


def _record_response(action: CallAction) -> web.Response:
    RecordSettings.from_request(action.body)
    return _enqueue(action)


def _enqueue(action: CallAction) -> web.Response:
    op = action.new_operation("notStarted")
    action.state.engine.enqueue(action.call, op)
    return operation_response(action.state, action.call, op)


def _subscribe_to_tone(action: CallAction) -> web.Response:
    op = action.new_operation("completed")
    action.call.operations[op.id] = op
    action.call.tones_subscribed = True
    return operation_response(action.state, action.call, op)


def _send_dtmf_tones(action: CallAction) -> web.Response:
    tones = _validate.tones(action.body.get("tones"), "tones", keys=False, required=True)
    delay_ms = _validate.int_in_range(action.body, "delayBetweenTonesMs", 0, None, 0)
    op = action.new_operation("running")
    action.state.engine.send_tones(action.call, op, tones, delay_ms)
    return operation_response(action.state, action.call, op)


def _cancel_media(action: CallAction) -> web.Response:
    # The documented example's Location names another id than the body: so does the emulator.
    location_id = new_id()
    op = action.new_operation("completed", location_id=location_id)
    action.state.engine.cancel_all(action.call, notify=True)
    action.call.operations[op.id] = op
    body = {
        "@odata.type": op.odata_type,
        "status": op.status,
        "clientContext": op.client_context,
        "id": op.id,
    }
    location = f"{call_url(action.state, action.call)}/operations/{location_id}"
    return web.json_response(body, headers={"Location": location})


def _mute(action: CallAction) -> web.Response:
    op = action.new_operation("completed")
    action.call.operations[op.id] = op
    action.state.roster.set_bot_muted(action.call, action.name == "mute")
    return operation_response(action.state, action.call, op)


def _update_recording_status(action: CallAction) -> web.Response:
    status = _validate.one_of(action.body.get("status"), RECORDING_STATUSES, "status")
    op = action.new_operation("completed")
    action.call.operations[op.id] = op
    action.state.roster.set_recording_status(action.call, status)
    return operation_response(action.state, action.call, op)


MEDIA_ACTIONS: dict[str, ActionSpec] = {
    "playPrompt": ActionSpec(_play_prompt, service_hosted=True),
    "recordResponse": ActionSpec(_record_response, service_hosted=True),
    "subscribeToTone": ActionSpec(_subscribe_to_tone, service_hosted=True),
    "sendDtmfTones": ActionSpec(_send_dtmf_tones),
    "cancelMediaProcessing": ActionSpec(_cancel_media),
    "mute": ActionSpec(_mute),
    "unmute": ActionSpec(_mute),
    "updateRecordingStatus": ActionSpec(_update_recording_status),
}


def recording_handler(state: EmulatorState) -> web.RouteDef:
    """``GET /_emulator/recordings/{opId}``: the WAV with ``Authorization: Bearer
    <recordingAccessToken>``, else 401 (no Graph auth, never faulted)."""

    async def download(request: web.Request) -> web.StreamResponse:
        op_id = normalize_guid(request.match_info["op_id"]) or ""
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        for call in state.calls.values():
            op = call.operations.get(op_id)
            if op is not None and op.recording_access_token:
                if not hmac.compare_digest(token.encode(), op.recording_access_token.encode()):
                    raise GraphError(401, "InvalidAuthenticationToken", "Bad recording token.")
                timeline = op.timeline or {}
                speech = timeline.get("speech")
                wav = synth_wav(
                    float(timeline.get("recordedS", 0.01)),
                    (float(speech[0]), float(speech[1])) if speech else None,
                )
                return web.Response(body=wav, content_type="audio/wav")
        raise not_found("Unknown recording.")

    return web.get("/_emulator/recordings/{op_id}", download)
