"""The participants of the fake Graph: ``GET .../participants`` (and ``/{id}``),
``POST .../participants/invite``, ``POST .../participants/{id}/mute``,
``.../startHoldMusic``, ``.../stopHoldMusic`` and ``DELETE .../participants/{id}`` (their
roster updates: see ``_roster``)."""

from __future__ import annotations

import time

from aiohttp import web

from commsgw.emulator import _results, _validate
from commsgw.emulator._calls import Call, Operation, Participant
from commsgw.emulator._errors import GraphError, bad_request, not_found
from commsgw.emulator._graph_common import (
    ESTABLISHED,
    CallAction,
    authenticate,
    live_call,
    operation_response,
    require_state,
)
from commsgw.emulator._notifications import operation_notification
from commsgw.emulator._state import EmulatorState

MAX_INVITEES = 5  # "Inviting up to 5 participants is supported."


class ParticipantsApi:
    """The participants routes of one emulator instance."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def routes(self, calls: str) -> list[web.RouteDef]:
        base = calls + "/{call_id}/participants"
        return [
            web.get(base, self._h_list),
            web.post(base + "/invite", self._h_invite),
            web.get(base + "/{participant_id}", self._h_get),
            web.post(base + "/{participant_id}/mute", self._h_mute),
            web.post(base + "/{participant_id}/startHoldMusic", self._h_start_hold),
            web.post(base + "/{participant_id}/stopHoldMusic", self._h_stop_hold),
            web.delete(base + "/{participant_id}", self._h_delete),
        ]

    def _call(self, request: web.Request, action: str | None = None) -> Call:
        authenticate(self._state, request)
        call = live_call(self._state, request.match_info["call_id"])
        if action is not None:
            require_state(call, action, ESTABLISHED)
        return call

    def _participant(self, request: web.Request, call: Call) -> Participant:
        found = self._state.roster.get(call, request.match_info["participant_id"])
        if found is None:
            raise not_found(f"Participant '{request.match_info['participant_id']}' not found.")
        return found

    async def _action(self, request: web.Request, call: Call, name: str) -> CallAction:
        body = await _validate.json_body(request)
        return CallAction(self._state, call, name, _validate.client_context(body), body)

    async def _h_list(self, request: web.Request) -> web.Response:
        call = self._call(request)
        context = (
            f"{self._state.graph_url}/$metadata#communications/calls('{call.id}')/participants"
        )
        return web.json_response(
            {"@odata.context": context, "value": [p.to_json() for p in call.participants.values()]}
        )

    async def _h_get(self, request: web.Request) -> web.Response:
        call = self._call(request)
        return web.json_response(self._participant(request, call).to_json())

    async def _h_invite(self, request: web.Request) -> web.Response:
        call = self._call(request, "invite")
        action = await self._action(request, call, "invite")
        invitees = _validate.invitations(
            action.body.get("participants"), "participants", 1, MAX_INVITEES
        )
        if invitees[0].get("replacesCallId"):
            invitees = invitees[:1]  # "supports only one participant": the others are ignored
        elif len(invitees) > 1 and call.kind == "p2p":
            raise bad_request(
                "Inviting multiple participants in one request is only supported for group calls."
            )
        op = action.new_operation("running")
        op.participants = invitees
        self._state.roster.invite(call, op, invitees)
        return operation_response(self._state, call, op)

    async def _h_mute(self, request: web.Request) -> web.Response:
        call = self._call(request, "mute")
        participant = self._participant(request, call)
        action = await self._action(request, call, "muteParticipant")
        op = action.new_operation("completed")
        call.operations[op.id] = op
        self._state.roster.set_muted(call, participant, True)
        return operation_response(self._state, call, op)

    async def _h_start_hold(self, request: web.Request) -> web.Response:
        return await self._hold(request, "startHoldMusic", True)

    async def _h_stop_hold(self, request: web.Request) -> web.Response:
        return await self._hold(request, "stopHoldMusic", False)

    async def _hold(self, request: web.Request, name: str, hold: bool) -> web.Response:
        """Hold music: 200 ``running``, then the operation ``completed`` (a ``deleted``
        notification on it). The 409 for holding a held participant (or releasing one not on
        hold) and the 400 for the bot itself are the emulator's choices (undocumented)."""
        call = self._call(request, name)
        participant = self._participant(request, call)
        if participant.id == call.my_participant_id:
            raise bad_request(f"{name} applies to another participant, not the bot itself.")
        if participant.on_hold == hold:
            now = "already on hold" if hold else "not on hold"
            raise GraphError(409, "Conflict", f"Participant '{participant.id}' is {now}.")
        action = await self._action(request, call, name)
        prompt = action.body.get("customPrompt")
        if prompt is not None:
            _validate.media_info(prompt.get("mediaInfo"), "customPrompt.mediaInfo")
        op = action.new_operation("running")
        call.operations[op.id] = op
        participant.on_hold = hold
        call.later(self._state.media_op_seconds, lambda: self._held(call, op))
        return operation_response(self._state, call, op)

    def _held(self, call: Call, op: Operation) -> None:
        op.status, op.result_info = "completed", _results.copy(_results.SUCCESS)
        op.finished_at = time.time()
        self._state.notify(call, operation_notification(op, "deleted", wire_ids=False))

    async def _h_delete(self, request: web.Request) -> web.Response:
        call = self._call(request, "remove a participant")
        participant = self._participant(request, call)
        if participant.id == call.my_participant_id:
            raise bad_request("The bot cannot remove itself: DELETE the call to leave it.")
        self._state.roster.remove(call, participant)
        return web.Response(status=204)
