"""The HTTP side: Graph's callback webhook, on the same event loop as gRPC.

POST {webhook_path}: 413 over the size limit, 415 when not JSON, 401 when the bearer token
fails validation, 400 when the body is not a commsNotifications document, 503 when the event log
cannot store it (Graph redelivers), and 202 only once every notification in it is stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web

from commsgw._errors import EventLogUnavailable, NotificationError
from commsgw._events import AppendResult, EventLog
from commsgw._jwt import NotificationClaims
from commsgw._notifications import parse_notifications

log = logging.getLogger("commsgw.webhook")


class Validator(Protocol):
    async def validate(self, authorization_header: str | None) -> NotificationClaims: ...


@dataclass(slots=True)
class WebhookStats:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    posts: int = 0


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message}}, status=status)


class Webhook:
    def __init__(
        self,
        *,
        validator: Validator,
        log_: EventLog,
        max_bytes: int,
        ready: Callable[[], bool] = lambda: True,
        on_outcome: Callable[[str, int], None] | None = None,
    ) -> None:
        self._validator = validator
        self._log = log_
        self._max_bytes = max_bytes
        self._ready = ready
        self._on_outcome = on_outcome
        self.stats = WebhookStats()

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        response = await self._handle(request)
        self.stats.posts += 1
        log.info(
            "webhook POST %s -> %d in %.1f ms",
            request.path,
            response.status,
            (time.perf_counter() - started) * 1000,
        )
        if self._on_outcome is not None:
            self._on_outcome("accepted" if response.status == 202 else "refused", response.status)
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        length = request.content_length
        if length is not None and length > self._max_bytes:
            return _problem(413, f"body over {self._max_bytes} bytes")
        if request.content_type != "application/json":
            return _problem(415, "Content-Type must be application/json")
        try:
            claims = await self._validator.validate(request.headers.get("Authorization"))
        except NotificationError as err:
            self.stats.rejected += 1
            return _problem(err.http_status, err.message)
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > self._max_bytes:
                return _problem(413, f"body over {self._max_bytes} bytes")
        try:
            items = parse_notifications(
                bytes(body), tenant_id=claims.tenant_id, receive_time=datetime.now(UTC)
            )
        except NotificationError as err:
            self.stats.rejected += 1
            return _problem(err.http_status, err.message)
        try:
            result: AppendResult = await self._log.append(items)
        except EventLogUnavailable as err:
            return _problem(503, err.message)
        self.stats.accepted += result.appended
        self.stats.duplicates += result.duplicates
        return web.Response(status=202)


def build_app(
    webhook: Webhook,
    path: str,
    *,
    extra_routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]
    | None = None,
) -> web.Application:
    # The size limit is enforced by the handler (413 with a body); aiohttp's own is lifted so
    # that it does not answer first with its own page.
    app = web.Application(client_max_size=webhook._max_bytes + 1)
    app.router.add_post(path, webhook.handle)
    for method, route, handler in extra_routes or []:
        app.router.add_route(method, route, handler)
    return app
