"""The far-end test controls under ``/_emulator/`` (declared in ``_control_api``, bodies in
``_control_types``): ring the bot, press keys, set what the caller says, hang up from the far
end, fail the next transfer, and say how callees respond.

Errors are Graph-shaped: 400 bad body, 404 unknown or ended call, 409 a call in the wrong state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from commsgw.emulator import _control_types as t
from commsgw.emulator._delivery import DeliveryFault
from commsgw.emulator._errors import GraphError, bad_request, default_graph_code, not_found
from commsgw.emulator._remote import FarEnd, NoSuchCall, NotAllowed
from commsgw.emulator._state import EmulatorState

Handler = Callable[[web.Request], Awaitable[web.Response]]


def controlled(handler: Handler) -> Handler:
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

        self.handlers: dict[str, Handler] = {
            "ring": self._h_ring,
            "pressTones": self._h_tones,
            "setCaller": self._h_caller,
            "hangUp": self._h_hang_up,
            "failNextTransfer": self._h_fail_transfer,
            "drop": self._h_drop,
            "setCallMedia": self._h_media,
            "addDeliveryFault": self._h_delivery_fault,
            "setCallee": self._h_callee,
        }

    async def _h_ring(self, request: web.Request) -> web.Response:
        body = t.decode(await request.read(), t.RingBody)
        call_id = self._far.ring(
            body.callback_uri,
            caller=body.caller,
            caller_name=body.caller_name,
            target=body.target,
            tenant_id=body.tenant_id,
            chat_info=body.chat_info,
            meeting_info=body.meeting_info,
            answer_window_s=body.answer_window_s,
        )
        if body.prompt_s is not None:
            self._far.set_prompt_seconds(call_id, body.prompt_s)
        snapshot = self._state.calls[call_id].snapshot()
        return web.json_response({"id": call_id, "call": snapshot}, status=201)

    async def _h_tones(self, request: web.Request) -> web.Response:
        body = t.decode(await request.read(), t.TonesBody)
        call_id = request.match_info["callId"]
        if body.after_s == 0 and body.interval_s == 0:
            return web.json_response({"sequenceIds": self._far.press_tones(call_id, body.tones)})
        due = self._far.press_tones_later(
            call_id, body.tones, after_s=body.after_s, interval_s=body.interval_s
        )
        return web.json_response({"dueS": due}, status=202)

    async def _h_caller(self, request: web.Request) -> web.Response:
        body = t.decode(await request.read(), t.CallerBody)
        model = self._far.set_caller(
            request.match_info["callId"],
            speech_after_s=body.speech_after_s,
            speech_s=body.speech_s,
        )
        return web.json_response(model.to_json())

    async def _h_hang_up(self, request: web.Request) -> web.Response:
        self._far.remote_hang_up(request.match_info["callId"])
        return web.Response(status=204)

    async def _h_fail_transfer(self, request: web.Request) -> web.Response:
        self._far.fail_next_transfer(request.match_info["callId"])
        return web.Response(status=204)

    async def _h_drop(self, request: web.Request) -> web.Response:
        self._far.drop(request.match_info["callId"])
        return web.Response(status=204)

    async def _h_media(self, request: web.Request) -> web.Response:
        body = t.decode(await request.read(), t.CallMediaBody)
        self._far.set_prompt_seconds(request.match_info["callId"], body.prompt_s)
        return web.json_response({"promptS": body.prompt_s})

    async def _h_delivery_fault(self, request: web.Request) -> web.Response:
        body = t.decode(await request.read(), t.DeliveryFaultBody)
        fault = DeliveryFault(body.kind, body.count, body.delay_s, body.match)
        armed = self._far.misdeliver(request.match_info["callId"], fault)
        return web.json_response({"deliveryFaults": [f.to_json() for f in armed]}, status=201)

    async def _h_callee(self, request: web.Request) -> web.Response:
        body = t.decode(await request.read(), t.CalleeBody)
        self._far.set_callee(request.match_info["identityId"], body.response, ring_s=body.ring_s)
        return web.json_response({"response": body.response, "ringS": body.ring_s})
