"""The test controls under ``/_emulator/`` (never authenticated, never faulted).

Owns health, the fault list (``GET``/``POST``/``DELETE /_emulator/faults``), token revocation,
notification key rotation, call snapshots, and the request and delivery logs; the far end's
controls (ring the bot, press keys, hang up, ...) are in ``_control_calls``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from commsgw._ids import normalize_guid
from commsgw.emulator._control_calls import FarEndRoutes
from commsgw.emulator._errors import GraphError
from commsgw.emulator._faults import Fault
from commsgw.emulator._state import EmulatorState


class Controls:
    """The ``/_emulator/`` endpoints of one emulator instance."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._far_end = FarEndRoutes(state)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_emulator/health", self._h_health),
            web.get("/_emulator/faults", self._h_faults_list),
            web.post("/_emulator/faults", self._h_faults_add),
            web.delete("/_emulator/faults", self._h_faults_clear),
            web.post("/_emulator/revoke-tokens", self._h_revoke),
            web.post("/_emulator/rotate-notification-key", self._h_rotate),
            web.get("/_emulator/calls", self._h_calls),
            web.get("/_emulator/calls/{call_id}", self._h_call),
            web.get("/_emulator/requests", self._h_requests),
            web.get("/_emulator/deliveries", self._h_deliveries),
            *self._far_end.routes(),
        ]

    async def _h_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "baseUrl": self._state.base_url})

    async def _h_faults_list(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": self._state.faults.active()})

    async def _h_faults_add(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
        except ValueError as exc:
            return web.json_response({"error": f"invalid JSON: {exc}"}, status=400)
        items: list[Any]
        if isinstance(data, list):
            items = data
        elif isinstance(data, dict) and isinstance(data.get("faults"), list):
            items = data["faults"]
        else:
            items = [data]
        try:
            faults = [Fault.from_json(item) for item in items if isinstance(item, dict)]
            if len(faults) != len(items):
                raise ValueError("each fault must be a JSON object")
        except (TypeError, ValueError, re.error) as exc:
            return web.json_response({"error": str(exc)}, status=400)
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

    async def _h_calls(self, request: web.Request) -> web.Response:
        return web.json_response({"value": [c.snapshot() for c in self._state.calls.values()]})

    async def _h_call(self, request: web.Request) -> web.Response:
        cid = normalize_guid(request.match_info["call_id"])
        call = self._state.calls.get(cid) if cid else None
        if call is None:
            raise GraphError(404, "itemNotFound", "Unknown call.")
        return web.json_response(call.snapshot())

    async def _h_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"value": [{**r._asdict()} for r in self._state.request_log]})

    async def _h_deliveries(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "value": [
                    {k: v for k, v in a._asdict().items() if k != "payload"}
                    for a in self._state.delivery_log
                ]
            }
        )
