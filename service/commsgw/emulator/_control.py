"""The test controls under ``/_emulator/`` (never authenticated, never faulted).

The routes are made from the declaration in ``_control_api`` (which also gives
``GET /_emulator/openapi.json``); this owns health, the fault list, token revocation,
notification key rotation and call snapshots; the far end's controls (ring the bot, press keys,
hang up, ...) are in ``_control_calls``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from commsgw._ids import normalize_guid
from commsgw.emulator import _control_api, _control_types
from commsgw.emulator._control_calls import FarEndRoutes, Handler, controlled
from commsgw.emulator._control_journal import JournalRoutes
from commsgw.emulator._errors import not_found
from commsgw.emulator._faults import Fault
from commsgw.emulator._page import PageRoutes
from commsgw.emulator._state import EmulatorState, origin


class Controls:
    """The ``/_emulator/`` endpoints of one emulator instance."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._far_end = FarEndRoutes(state)
        self.handlers: dict[str, Handler] = {
            "health": self._h_health,
            "openApi": self._h_openapi,
            "listFaults": self._h_faults_list,
            "addFaults": self._h_faults_add,
            "clearFaults": self._h_faults_clear,
            "revokeTokens": self._h_revoke,
            "rotateNotificationKey": self._h_rotate,
            "reset": self._h_reset,
            "listCalls": self._h_calls,
            "getCall": self._h_call,
            **self._far_end.handlers,
            **JournalRoutes(state).handlers,
            **PageRoutes(state).handlers,
        }

    def routes(self) -> list[web.RouteDef]:
        """One route per declared control (KeyError: a control without a handler)."""
        return [
            web.route(c.method, c.path, controlled(self.handlers[c.operation_id]))
            for c in _control_api.CONTROLS
            if not c.graph_served
        ]

    async def _h_health(self, request: web.Request) -> web.Response:
        cfg = self._state.config
        timings = {
            "mediaOpSeconds": self._state.media_op_seconds,
            "ringSeconds": cfg.ring_s,
            "answerWindowSeconds": cfg.answer_window_s,
            "establishDelaySeconds": cfg.establish_delay_s,
            "notificationDelaySeconds": cfg.notification_delay,
        }
        return web.json_response(
            {"status": "ok", "baseUrl": self._state.base_url, "timings": timings}
        )

    async def _h_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(_control_api.document(origin(request)))

    async def _h_faults_list(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": self._state.faults.active()})

    async def _h_faults_add(self, request: web.Request) -> web.Response:
        bodies = _control_types.decode_faults(await request.read())
        faults = [Fault.from_body(b) for b in bodies]  # ValueError: a 400 (see controlled)
        ids = [self._state.faults.add(f) for f in faults]
        return web.json_response({"ids": ids, "faults": self._state.faults.active()}, status=201)

    async def _h_faults_clear(self, request: web.Request) -> web.Response:
        self._state.faults.clear()
        return web.Response(status=204)

    async def _h_revoke(self, request: web.Request) -> web.Response:
        self._state.tokens.revoke_all()
        return web.Response(status=204)

    async def _h_rotate(self, request: web.Request) -> web.Response:
        keep = request.query.get("keepOld", "true").lower() != "false"
        return web.json_response({"kid": self._state.notif.rotate(keep_old=keep)})

    async def _h_reset(self, request: web.Request) -> web.Response:
        await self._state.reset()
        return web.Response(status=204)

    async def _h_calls(self, request: web.Request) -> web.Response:
        return web.json_response({"value": [c.snapshot() for c in self._state.calls.values()]})

    async def _h_call(self, request: web.Request) -> web.Response:
        raw = request.match_info["callId"]
        cid = normalize_guid(raw)
        call = self._state.calls.get(cid) if cid else None
        if call is None:
            raise not_found(f"Call '{raw}' is unknown.")
        snapshot: dict[str, Any] = call.snapshot()
        return web.json_response(snapshot)
