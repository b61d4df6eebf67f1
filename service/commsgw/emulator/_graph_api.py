"""The fake Graph v1.0 calls API: calls, call actions, operations and recording downloads.

Owns bearer-token checks on Graph requests, the handlers of ``/v1.0/communications/calls``
and below, the call-action table (:data:`_CALL_ACTIONS`: a new action is one handler there),
the recording download (``/_emulator/recordings/{opId}``, the recordingLocation of a finished
recordResponse) and Graph-style error bodies.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from commsgw._ids import normalize_guid
from commsgw.emulator._calls import (
    TERMINATED_RESULT,
    Call,
    Operation,
    call_notification,
    new_id,
)
from commsgw.emulator._state import REQUEST_ID, EmulatorState

MAX_CLIENT_CONTEXT = 256

_DEFAULT_GRAPH_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Forbidden",
    404: "itemNotFound",
    405: "BadRequest",
    409: "Conflict",
    429: "activityLimitReached",
    500: "InternalServerError",
    502: "BadGateway",
    503: "serviceNotAvailable",
    504: "GatewayTimeout",
}
_ACTION_PREFIX = "microsoft.graph."
_RECORD_TIMEOUTS = (
    "maxRecordDurationInSeconds",
    "initialSilenceTimeoutInSeconds",
    "maxSilenceTimeoutInSeconds",
)
# A tiny valid WAV (8 kHz mono 16-bit, 10 ms of silence) served as every recording.
_WAV = (
    b"RIFF"
    + (36 + 160).to_bytes(4, "little")
    + b"WAVEfmt "
    + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little")
    + (1).to_bytes(2, "little")
    + (8000).to_bytes(4, "little")
    + (16000).to_bytes(4, "little")
    + (2).to_bytes(2, "little")
    + (16).to_bytes(2, "little")
    + b"data"
    + (160).to_bytes(4, "little")
    + b"\x00" * 160
)


def default_graph_code(status: int) -> str:
    """The error code Graph answers with for an HTTP status."""
    return _DEFAULT_GRAPH_CODES.get(status, "UnknownError")


def graph_error(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An error response shaped like Graph's."""
    rid = request.get(REQUEST_ID) or new_id()
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": rid,
                "client-request-id": request.headers.get("client-request-id", rid),
            },
        }
    }
    return web.json_response(body, status=status, headers=dict(headers or {}))


class GraphError(Exception):
    """Raised by a Graph handler; the middleware renders it with :func:`graph_error`."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self, request: web.Request) -> web.Response:
        return graph_error(request, self.status, self.code, self.message, self.headers)


@dataclass(frozen=True)
class CallAction:
    """One call action as its handler gets it: the call is live, the body a JSON object."""

    call: Call
    name: str  # as Graph spells it (e.g. "playPrompt"); also the operation's kind
    client_context: str | None
    body: dict[str, Any]


ActionHandler = Callable[["GraphApi", CallAction], web.Response]


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GraphError(400, "BadRequest", f"Unable to read JSON request payload: {exc}") from exc
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
    return body


def _client_context(body: Mapping[str, Any]) -> str | None:
    value = body.get("clientContext")
    if value is None:
        return None
    if not isinstance(value, str):
        raise GraphError(400, "BadRequest", "clientContext must be a string.")
    if len(value) > MAX_CLIENT_CONTEXT:
        raise GraphError(
            400,
            "BadRequest",
            f"clientContext exceeds the maximum length of {MAX_CLIENT_CONTEXT} characters.",
        )
    return value


def _new_operation(action: CallAction, status: str, location_id: str | None = None) -> Operation:
    return Operation(
        id=new_id(),
        call_id=action.call.id,
        kind=action.name,
        client_context=action.client_context,
        status=status,
        request=action.body,
        location_id=location_id,
    )


class GraphApi:
    """The Graph calls API of one emulator instance."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def routes(self) -> list[web.RouteDef]:
        calls = "/v1.0/communications/calls"
        return [
            web.post(calls, self._h_create_call),
            web.get(calls + "/{call_id}", self._h_get_call),
            web.delete(calls + "/{call_id}", self._h_delete_call),
            web.post(calls + "/{call_id}/{action}", self._h_call_action),
            web.get(calls + "/{call_id}/operations/{op_id}", self._h_get_operation),
            web.route("*", "/v1.0/{tail:.*}", self._h_graph_unknown),
            # the recordingLocation of a recordResponse: no Graph auth, never faulted
            web.get("/_emulator/recordings/{op_id}", self._h_recording),
        ]

    # ------------------------------------------------------------------ helpers

    def _authenticate(self, request: web.Request) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {
            "WWW-Authenticate": (
                f'Bearer realm="", '
                f'authorization_uri="{self._state.base_url}/common/oauth2/authorize", '
                f'client_id="00000003-0000-0000-c000-000000000000"'
            )
        }
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        claims, reason = self._state.tokens.validate(
            token.strip(), {o.rstrip("/") for o in self._state.own_origins(request)}
        )
        if claims is None:
            raise GraphError(401, "InvalidAuthenticationToken", reason, challenge)
        return claims

    def _live_call(self, raw_id: str) -> Call:
        cid = normalize_guid(raw_id)
        call = self._state.calls.get(cid) if cid else None
        if call is None or not call.alive:
            raise GraphError(404, "itemNotFound", f"Call '{raw_id}' was not found.")
        return call

    def _call_url(self, call: Call) -> str:
        return f"{self._state.graph_url}/communications/calls/{call.id}"

    def _operation_response(self, call: Call, op: Operation) -> web.Response:
        return web.json_response(
            op.to_json(),
            status=200,
            headers={"Location": f"{self._call_url(call)}/operations/{op.id}"},
        )

    # ------------------------------------------------------------------ calls

    async def _h_create_call(self, request: web.Request) -> web.Response:
        claims = self._authenticate(request)
        body = await _json_body(request)
        callback = body.get("callbackUri")
        if not isinstance(callback, str) or not callback:
            raise GraphError(400, "BadRequest", "callbackUri is required.")
        parts = urlsplit(callback)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise GraphError(400, "BadRequest", f"callbackUri '{callback}' is not a valid URL.")
        call = Call(
            id=new_id(),
            tenant_id=str(claims["tid"]),
            client_id=str(claims.get("appid", self._state.config.client_id)),
            callback_uri=callback,
            request=body,
        )
        self._state.calls[call.id] = call
        self._state.notify(call, call_notification(call, "updated"))
        call.state = "established"
        self._state.notify(call, call_notification(call, "updated"))
        resp_body = call.to_json()
        resp_body["state"] = "establishing"
        return web.json_response(resp_body, status=201, headers={"Location": self._call_url(call)})

    async def _h_get_call(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        call = self._live_call(request.match_info["call_id"])
        return web.json_response(call.to_json())

    async def _h_delete_call(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        call = self._live_call(request.match_info["call_id"])
        self._state.engine.cancel_all(call, notify=False)
        call.state = "terminated"
        call.result_info = dict(TERMINATED_RESULT)
        self._state.notify(call, call_notification(call, "deleted"))
        self._state.close_lane(call.id)
        return web.Response(status=204)

    async def _h_get_operation(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        call = self._live_call(request.match_info["call_id"])
        op = call.find_operation(normalize_guid(request.match_info["op_id"]) or "")
        if op is None:
            raise GraphError(404, "itemNotFound", "Operation was not found.")
        return web.json_response(op.to_json())

    async def _h_graph_unknown(self, request: web.Request) -> web.Response:
        tail = request.match_info.get("tail", "")
        self._authenticate(request)
        if re.fullmatch(r"communications/calls(/[^/]+)?", tail):
            raise GraphError(405, "BadRequest", f"{request.method} is not allowed here.")
        segment = tail.split("/")[-1] if tail else ""
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    async def _h_recording(self, request: web.Request) -> web.StreamResponse:
        op_id = normalize_guid(request.match_info["op_id"]) or ""
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        for call in self._state.calls.values():
            op = call.operations.get(op_id)
            if op is not None and op.recording_access_token:
                if not hmac.compare_digest(token.encode(), op.recording_access_token.encode()):
                    raise GraphError(401, "InvalidAuthenticationToken", "Bad recording token.")
                return web.Response(body=_WAV, content_type="audio/wav")
        raise GraphError(404, "itemNotFound", "Unknown recording.")

    # ------------------------------------------------------------------ call actions

    async def _h_call_action(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        segment = request.match_info["action"]
        if segment.lower().startswith(_ACTION_PREFIX):
            segment = segment[len(_ACTION_PREFIX) :]
        found = _ACTIONS_BY_KEY.get(segment.lower())
        if found is None:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        name, handler = found
        call = self._live_call(request.match_info["call_id"])
        body = await _json_body(request)
        return handler(self, CallAction(call, name, _client_context(body), body))

    def _enqueue_media(self, action: CallAction) -> web.Response:
        op = _new_operation(action, "notStarted")
        self._state.engine.enqueue(action.call, op)
        return self._operation_response(action.call, op)

    def _act_play_prompt(self, action: CallAction) -> web.Response:
        prompts = action.body.get("prompts")
        if not isinstance(prompts, list) or not prompts:
            raise GraphError(400, "BadRequest", "prompts must be a non-empty array.")
        return self._enqueue_media(action)

    def _act_record_response(self, action: CallAction) -> web.Response:
        for key in _RECORD_TIMEOUTS:
            value = action.body.get(key)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise GraphError(400, "BadRequest", f"{key} must be a positive integer.")
        return self._enqueue_media(action)

    def _act_subscribe_to_tone(self, action: CallAction) -> web.Response:
        op = _new_operation(action, "completed")
        action.call.operations[op.id] = op
        return self._operation_response(action.call, op)

    def _act_cancel_media(self, action: CallAction) -> web.Response:
        call = action.call
        location_id = new_id()
        op = _new_operation(action, "completed", location_id=location_id)
        self._state.engine.cancel_all(call, notify=True)
        call.operations[op.id] = op
        out = {
            "@odata.type": op.odata_type,
            "status": op.status,
            "clientContext": op.client_context,
            "id": op.id,
        }
        return web.json_response(
            out,
            status=200,
            headers={"Location": f"{self._call_url(call)}/operations/{location_id}"},
        )


# Graph's call actions, POST .../calls/{id}/{name} (or .../microsoft.graph.{name}), the name
# matched without regard to case. Adding an action = adding its handler here.
_CALL_ACTIONS: dict[str, ActionHandler] = {
    "playPrompt": GraphApi._act_play_prompt,
    "recordResponse": GraphApi._act_record_response,
    "subscribeToTone": GraphApi._act_subscribe_to_tone,
    "cancelMediaProcessing": GraphApi._act_cancel_media,
}
_ACTIONS_BY_KEY = {name.lower(): (name, handler) for name, handler in _CALL_ACTIONS.items()}
