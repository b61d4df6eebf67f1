"""The emulator's middleware: request ids, fault injection, the request log, error rendering."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from commsgw.emulator._calls import new_id
from commsgw.emulator._errors import REQUEST_ID, GraphError, default_graph_code, graph_error
from commsgw.emulator._faults import Fault, FaultInjector
from commsgw.emulator._identity import AadError, aad_error, default_aad_error, is_token_path
from commsgw.emulator._state import RequestRecord

_log = logging.getLogger("commsgw.emulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _fmt_retry_after(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Middleware:
    """Wraps every handler of one emulator instance."""

    def __init__(self, faults: FaultInjector, request_log: list[RequestRecord]) -> None:
        self.faults = faults
        self.request_log = request_log

    @web.middleware
    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        rid, at = new_id(), time.time()
        request[REQUEST_ID] = rid
        path = request.path
        crid = request.headers.get("client-request-id")
        hit = None if path.startswith("/_emulator/") else self.faults.take(request.method, path)
        status = 0
        resp: web.StreamResponse | None = None
        # aiohttp keeps what was read: the handler reads the same bytes again.
        # Graph's and the controls' bodies are journaled; the identity platform's never (secrets).
        journaled = path.startswith(("/v1.0/", "/_emulator/"))
        body = await request.read() if journaled and request.can_read_body else b""
        try:
            if hit is not None:
                fault = hit.fault
                _log.info("fault %s fires on %s %s", hit.id, request.method, path)
                if fault.delay_s > 0:
                    # Buffer the body first: a stalled passthrough request still takes effect
                    # even when the client gives up meanwhile (an ambiguous outcome).
                    await request.read()
                    await asyncio.sleep(fault.delay_s)
                if fault.reset_connection:
                    self._abort(request)
                    raise asyncio.CancelledError()  # nothing to send: the peer is gone
                if fault.passthrough:
                    resp = await self._dispatch(request, handler)
                else:
                    resp = self._fault_response(request, fault)
            else:
                resp = await self._dispatch(request, handler)
            resp.headers["request-id"] = rid
            if crid:
                resp.headers["client-request-id"] = crid
            status = resp.status
            return resp
        finally:
            logged = {
                k: v
                for k, v in (
                    ("client-request-id", crid),
                    ("content-type", request.headers.get("Content-Type")),
                    ("authorization", request.headers.get("Authorization", "").split(" ")[0]),
                    ("request-id", rid),
                    ("location", resp.headers.get("Location") if resp is not None else None),
                    ("retry-after", resp.headers.get("Retry-After") if resp is not None else None),
                    ("x-emulator-fault", hit.id if hit is not None else None),
                )
                if v
            }
            self.request_log.append(
                RequestRecord(request.method, path, status, logged, body, request.query_string, at)
            )

    @staticmethod
    def _abort(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    @staticmethod
    async def _dispatch(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except (GraphError, AadError) as exc:
            return exc.response(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if is_token_path(request.path):
                error, aadsts = default_aad_error(exc.status)
                return aad_error(request, exc.status, error, aadsts, exc.reason)
            return graph_error(request, exc.status, default_graph_code(exc.status), exc.reason)

    @staticmethod
    def _fault_response(request: web.Request, fault: Fault) -> web.Response:
        headers = dict(fault.headers or {})
        if fault.retry_after is not None:
            headers["Retry-After"] = _fmt_retry_after(fault.retry_after)
        if fault.body is not None:
            return web.json_response(fault.body, status=fault.status, headers=headers)
        if is_token_path(request.path):
            error, aadsts = default_aad_error(fault.status)
            return aad_error(
                request,
                fault.status,
                fault.error_code or error,
                aadsts,
                fault.message or f"Injected fault ({fault.status}).",
                headers,
            )
        code = fault.error_code or default_graph_code(fault.status)
        return graph_error(
            request,
            fault.status,
            code,
            fault.message or f"Injected fault ({fault.status} {code}).",
            headers,
        )
