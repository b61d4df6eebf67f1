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
from typing import Any, Protocol

from aiohttp import web

from commsgw._errors import EventLogUnavailable, NotificationError
from commsgw._events import AppendResult, EventLog
from commsgw._jwt import NotificationClaims
from commsgw._metrics import Metrics
from commsgw._notifications import parse_notifications

log = logging.getLogger("commsgw.webhook")


class Validator(Protocol):
    async def validate(self, authorization_header: str | None) -> NotificationClaims: ...


@dataclass(slots=True)
class _Outcome:
    tenant: str = ""
    appended: int = 0
    duplicates: int = 0
    reason: str = ""


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "message": message}}, status=status, headers=headers
    )


class RateLimiter:
    """A token bucket per source address: `rate` requests a second, bursts of twice that."""

    def __init__(self, rate: float, *, max_sources: int = 10_000) -> None:
        self._rate = rate
        self._burst = 2 * rate
        self._max_sources = max_sources
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, source: str, now: float | None = None) -> float:
        """0 when allowed, else the seconds to wait before the next request is."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(source, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1:
            self._buckets[source] = (tokens, now)
            return (1 - tokens) / self._rate
        if source not in self._buckets and len(self._buckets) >= self._max_sources:
            # Forget sources whose buckets are full again (idle for a while).
            full = [k for k, (t, ts) in self._buckets.items() if t + (now - ts) * self._rate
                    >= self._burst]  # fmt: skip
            for k in full:
                del self._buckets[k]
        self._buckets[source] = (tokens - 1, now)
        return 0.0


class Webhook:
    def __init__(
        self,
        *,
        validator: Validator,
        log_: EventLog,
        max_bytes: int,
        metrics: Metrics,
        rate: float | None = None,
        max_event_bytes: int | None = None,
    ) -> None:
        self._validator = validator
        self._log = log_
        self.max_bytes = max_bytes
        # An event that cannot fit in one gRPC message could never be delivered (every watch
        # it matches would fail on it, again after each resume): refused with 413 instead.
        self.max_event_bytes = max_event_bytes
        self._limiter = RateLimiter(rate) if rate else None
        self._metrics = metrics
        # Labelled metric children, looked up once (`labels()` costs more than `inc()`).
        self._by_status: dict[int, Any] = {}
        self._outcomes: dict[str, Any] = {
            k: metrics.notifications.labels(k) for k in ("accepted", "duplicate", "rejected")
        }

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        outcome = _Outcome()
        response = await self._handle(request, outcome)
        status = response.status
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = self._metrics.webhook_requests.labels(str(status))
        child.inc()
        if outcome.appended:
            self._outcomes["accepted"].inc(outcome.appended)
        if outcome.duplicates:
            self._outcomes["duplicate"].inc(outcome.duplicates)
        if status in (400, 401, 413):
            self._outcomes["rejected"].inc()
        log.info(
            "webhook POST %d",
            response.status,
            extra={
                "webhook": request.path,
                "status": response.status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "source": request.remote,
                "tenant": outcome.tenant,
                "notifications": outcome.appended + outcome.duplicates,
                "duplicates": outcome.duplicates,
                "reason": outcome.reason,
            },
        )
        return response

    async def _handle(self, request: web.Request, outcome: _Outcome) -> web.Response:
        if self._limiter is not None:
            wait = self._limiter.allow(request.remote or "")
            if wait:
                outcome.reason = "rate limited"
                return _problem(429, "too many requests", {"Retry-After": str(max(1, round(wait)))})
        length = request.content_length
        if length is not None and length > self.max_bytes:
            return _problem(413, f"body over {self.max_bytes} bytes")
        if request.content_type != "application/json":
            return _problem(415, "Content-Type must be application/json")
        try:
            claims = await self._validator.validate(request.headers.get("Authorization"))
        except NotificationError as err:
            outcome.reason = err.message
            return _problem(err.http_status, err.message)
        outcome.tenant = claims.tenant_id
        try:
            # aiohttp stops reading past client_max_size (max_bytes + 1, see build_app).
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _problem(413, f"body over {self.max_bytes} bytes")
        if len(body) > self.max_bytes:
            return _problem(413, f"body over {self.max_bytes} bytes")
        try:
            items = parse_notifications(body, tenant_id=claims.tenant_id)
        except NotificationError as err:
            outcome.reason = err.message
            return _problem(err.http_status, err.message)
        limit = self.max_event_bytes
        # An event is at most about twice its notification's size: only big bodies are sized.
        if limit is not None and 2 * len(body) + 1024 > limit:
            for index, item in enumerate(items):
                if item.event.ByteSize() > limit:
                    outcome.reason = f"notification value[{index}] too large to deliver"
                    return _problem(
                        413,
                        f"notification value[{index}] is over {limit} bytes once parsed: too "
                        "large for a WatchOperations message",
                    )
        try:
            result: AppendResult = await self._log.append(items)
        except EventLogUnavailable as err:
            outcome.reason = err.message
            return _problem(503, err.message, {"Retry-After": "1"})
        outcome.appended = result.appended
        outcome.duplicates = result.duplicates
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
    app = web.Application(client_max_size=webhook.max_bytes + 1)
    app.router.add_post(path, webhook.handle)
    for method, route, handler in extra_routes or []:
        app.router.add_route(method, route, handler)
    return app
