"""The fake Graph v1.0 calls API: the call resource, call actions, operations, participants and
recording downloads.

Owns the routes under ``/v1.0/communications/calls`` and the call-action table
(:data:`_CALL_ACTIONS`: a new action is one entry there, with the call states it needs). The
actions themselves live per family in ``_graph_lifecycle`` (answer, reject, redirect,
transfer, keepAlive) and ``_graph_media`` (prompts, recordings, tones, mute, recording status);
participants in ``_graph_participants``.
"""

from __future__ import annotations

import re

from aiohttp import web

from commsgw._ids import normalize_guid
from commsgw.emulator import _validate
from commsgw.emulator._conformance import conforming
from commsgw.emulator._errors import (
    GraphError,
    bad_request,
    default_graph_code,
    graph_error,
    not_found,
)
from commsgw.emulator._graph_common import (
    ActionSpec,
    CallAction,
    authenticate,
    call_url,
    live_call,
    require_state,
)
from commsgw.emulator._graph_lifecycle import LIFECYCLE_ACTIONS, new_call
from commsgw.emulator._graph_media import MEDIA_ACTIONS, recording_handler
from commsgw.emulator._graph_participants import ParticipantsApi
from commsgw.emulator._state import EmulatorState

__all__ = ["GraphApi", "GraphError", "default_graph_code", "graph_error"]

_ACTION_PREFIX = "microsoft.graph."


class GraphApi:
    """The Graph calls API of one emulator instance."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._participants = ParticipantsApi(state)

    def routes(self) -> list[web.RouteDef]:
        calls = "/v1.0/communications/calls"
        graph = [
            web.post(calls, self._h_create_call),
            web.get(calls + "/{call_id}", self._h_get_call),
            web.delete(calls + "/{call_id}", self._h_delete_call),
            *self._participants.routes(calls),
            web.post(calls + "/{call_id}/{action}", self._h_call_action),
            web.get(calls + "/{call_id}/operations/{op_id}", self._h_get_operation),
        ]
        return [
            # every Graph request is first held to Graph's published metadata (400 if not)
            *(
                web.route(r.method, r.path, conforming(self._state, r.handler), **r.kwargs)
                for r in graph
            ),
            web.route("*", "/v1.0/{tail:.*}", self._h_graph_unknown),
            # the recordingLocation of a recordResponse: no Graph auth, never faulted
            recording_handler(self._state),
        ]

    # ------------------------------------------------------------------ the call resource

    async def _h_create_call(self, request: web.Request) -> web.Response:
        claims = authenticate(self._state, request)
        call = new_call(self._state, await _validate.json_body(request), claims)
        self._state.calls[call.id] = call
        self._state.flow.place(call)
        # the call as created (the far end may already have moved it on)
        body = {
            "@odata.context": f"{self._state.graph_url}/$metadata#app/calls/$entity",
            **call.to_json(),
            "state": "establishing",
        }
        return web.json_response(
            body, status=201, headers={"Location": call_url(self._state, call)}
        )

    async def _h_get_call(self, request: web.Request) -> web.Response:
        authenticate(self._state, request)
        call = live_call(self._state, request.match_info["call_id"])
        context = f"{self._state.graph_url}/$metadata#communications/calls/$entity"
        return web.json_response({"@odata.context": context, **call.to_json()})

    async def _h_delete_call(self, request: web.Request) -> web.Response:
        authenticate(self._state, request)
        call = live_call(self._state, request.match_info["call_id"])
        self._state.flow.hang_up(call)
        return web.Response(status=204)

    async def _h_get_operation(self, request: web.Request) -> web.Response:
        authenticate(self._state, request)
        call = live_call(self._state, request.match_info["call_id"])
        op = call.find_operation(normalize_guid(request.match_info["op_id"]) or "")
        if op is None:
            raise not_found("Operation was not found.")
        return web.json_response(op.to_json())

    async def _h_graph_unknown(self, request: web.Request) -> web.Response:
        tail = request.match_info.get("tail", "")
        authenticate(self._state, request)
        if re.fullmatch(r"communications/calls(/[^/]+)?", tail):
            raise GraphError(405, "BadRequest", f"{request.method} is not allowed here.")
        segment = tail.split("/")[-1] if tail else ""
        raise bad_request(f"Resource not found for the segment '{segment}'.")

    # ------------------------------------------------------------------ call actions

    async def _h_call_action(self, request: web.Request) -> web.Response:
        authenticate(self._state, request)
        segment = request.match_info["action"]
        if segment.lower().startswith(_ACTION_PREFIX):
            segment = segment[len(_ACTION_PREFIX) :]
        found = _ACTIONS_BY_KEY.get(segment.lower())
        if found is None:
            raise bad_request(f"Resource not found for the segment '{segment}'.")
        name, spec = found
        call = live_call(self._state, request.match_info["call_id"])
        require_state(call, name, spec.states)
        if spec.service_hosted and call.app_hosted:
            raise bad_request(f"{name} is only supported for calls with service-hosted media.")
        body = await _validate.json_body(request)
        return spec.handler(
            CallAction(self._state, call, name, _validate.client_context(body), body)
        )


# Graph's call actions, POST .../calls/{id}/{name} (or .../microsoft.graph.{name}), the name
# matched without regard to case. Adding an action = adding its entry here (or to its family's
# table), with the call states it needs.
_CALL_ACTIONS: dict[str, ActionSpec] = {**LIFECYCLE_ACTIONS, **MEDIA_ACTIONS}
_ACTIONS_BY_KEY = {name.lower(): (name, spec) for name, spec in _CALL_ACTIONS.items()}
