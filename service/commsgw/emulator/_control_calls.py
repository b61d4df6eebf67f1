"""The far-end test controls under ``/_emulator/`` (never authenticated, never faulted).

* ``POST /_emulator/calls`` ``{"callbackUri", "caller"?, "callerName"?, "target"?, "tenantId"?,
  "chatInfo"?, "meetingInfo"?, "answerWindowS"?}``: ring the bot; 201 ``{"id", "call"}``;
* ``POST /_emulator/calls/{id}/tones`` ``{"tones": "12#" | ["tone1", ...]}``: the caller presses
  keys; 200 ``{"sequenceIds": [...]}`` (the ids reported, empty when not subscribed);
* ``PUT /_emulator/calls/{id}/caller`` ``{"speechAfterS", "speechS"}`` (null: never / until cut
  off): the caller model of the call's next recordings; 200 with the model;
* ``POST /_emulator/calls/{id}/hang-up``: the other party hangs up; 204;
* ``POST /_emulator/calls/{id}/fail-next-transfer``: 204;
* ``PUT /_emulator/callees/{userIdOrPhone}`` ``{"response", "ringS"?}``: how that callee
  responds (answer, decline, busy, noAnswer); 200.

Errors are Graph-shaped: 400 bad body, 404 unknown or ended call, 409 a call in the wrong state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from commsgw.emulator import _validate
from commsgw.emulator._errors import GraphError, bad_request, default_graph_code, not_found
from commsgw.emulator._parties import CallerModel
from commsgw.emulator._remote import FarEnd, NoSuchCall, NotAllowed
from commsgw.emulator._state import EmulatorState

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _number(body: dict[str, Any], key: str, default: float | None) -> float | None:
    if key not in body:
        return default
    value = body[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise bad_request(f"{key} must be a number or null.")
    return None if value is None else float(value)


def _controlled(handler: Handler) -> Handler:
    """Far-end errors as Graph-style answers."""

    async def run(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except NoSuchCall as exc:
            raise not_found(str(exc)) from None
        except NotAllowed as exc:
            raise GraphError(409, default_graph_code(409), str(exc)) from None
        except ValueError as exc:
            raise bad_request(str(exc)) from None

    return run


class FarEndRoutes:
    """The far-end controls of one emulator instance."""

    def __init__(self, state: EmulatorState) -> None:
        self._far = FarEnd(state)
        self._state = state

    def routes(self) -> list[web.RouteDef]:
        call = "/_emulator/calls/{call_id}"
        return [
            web.post("/_emulator/calls", _controlled(self._h_ring)),
            web.post(call + "/tones", _controlled(self._h_tones)),
            web.put(call + "/caller", _controlled(self._h_caller)),
            web.post(call + "/hang-up", _controlled(self._h_hang_up)),
            web.post(call + "/fail-next-transfer", _controlled(self._h_fail_transfer)),
            web.put("/_emulator/callees/{identity_id}", _controlled(self._h_callee)),
        ]

    async def _h_ring(self, request: web.Request) -> web.Response:
        body = await _validate.json_body(request)
        window = _number(body, "answerWindowS", None)
        call_id = self._far.ring(
            str(body.get("callbackUri") or ""),
            caller=body.get("caller"),
            caller_name=_validate.optional_str(body, "callerName"),
            target=_validate.optional_str(body, "target"),
            tenant_id=_validate.optional_str(body, "tenantId"),
            chat_info=body.get("chatInfo"),
            meeting_info=body.get("meetingInfo"),
            answer_window_s=window,
        )
        snapshot = self._state.calls[call_id].snapshot()
        return web.json_response({"id": call_id, "call": snapshot}, status=201)

    async def _h_tones(self, request: web.Request) -> web.Response:
        body = await _validate.json_body(request)
        tones = body.get("tones")
        if not isinstance(tones, str | list):
            raise bad_request("tones must be a string of keys or an array of tones.")
        ids = self._far.press_tones(request.match_info["call_id"], tones)
        return web.json_response({"sequenceIds": ids})

    async def _h_caller(self, request: web.Request) -> web.Response:
        body = await _validate.json_body(request)
        model = self._far.set_caller(
            request.match_info["call_id"],
            speech_after_s=_number(body, "speechAfterS", CallerModel.speech_after_s),
            speech_s=_number(body, "speechS", CallerModel.speech_s),
        )
        return web.json_response(model.to_json())

    async def _h_hang_up(self, request: web.Request) -> web.Response:
        self._far.remote_hang_up(request.match_info["call_id"])
        return web.Response(status=204)

    async def _h_fail_transfer(self, request: web.Request) -> web.Response:
        self._far.fail_next_transfer(request.match_info["call_id"])
        return web.Response(status=204)

    async def _h_callee(self, request: web.Request) -> web.Response:
        body = await _validate.json_body(request)
        response, ring_s = str(body.get("response", "answer")), _number(body, "ringS", None)
        self._far.set_callee(request.match_info["identity_id"], response, ring_s=ring_s)
        return web.json_response({"response": response, "ringS": ring_s})
