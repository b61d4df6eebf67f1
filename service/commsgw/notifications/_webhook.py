"""The HTTP side: Graph's callback webhook, on the same event loop as gRPC.

POST {webhook_path}: 413 over the size limit, 415 when not JSON, 401 when the bearer token
fails validation, 400 when the body is not a commsNotifications document, 503 when the event log
cannot store it (Graph redelivers), and 202 only once every notification in it is stored. A POST
whose DTMF tones come before earlier ones of the same call is held for up to the reorder window
first (``_tones``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from commsgw._errors import (
    CommsgwError,
    EventLogUnavailable,
    NotificationAuthError,
    NotificationError,
    NotificationFormatError,
    NotificationNotJson,
    NotificationRateLimited,
    NotificationTooLarge,
)
from commsgw._metrics import Metrics
from commsgw._tracing import SpanKind, Tracing, context_from, traceparent_of
from commsgw.eventlog import AppendResult, EventLog
from commsgw.notifications._jwt import NotificationClaims
from commsgw.notifications._parse import parse_notifications
from commsgw.notifications._tones import ToneOrder, in_sequence

log = logging.getLogger("commsgw.webhook")


# What a step runs in when the POST is not traced: one shared no-op (it holds no state).
_UNTRACED: AbstractContextManager[object] = contextlib.nullcontext()


class Validator(Protocol):
    async def validate(self, authorization_header: str | None) -> NotificationClaims: ...


@dataclass(slots=True)
class _Outcome:
    tenant: str = ""
    appended: int = 0
    duplicates: int = 0
    reason: str = ""
    span: Any = None  # the POST's span, when traced


# The webhook's one table: what refused a POST -> the HTTP status it is answered with.
HTTP_STATUS: dict[type[CommsgwError], int] = {
    NotificationAuthError: 401,
    NotificationFormatError: 400,
    NotificationTooLarge: 413,
    NotificationNotJson: 415,
    NotificationRateLimited: 429,
    EventLogUnavailable: 503,  # Graph redelivers
    NotificationError: 400,
}


def http_status_of(err: CommsgwError) -> int:
    for kind in type(err).__mro__:
        status = HTTP_STATUS.get(kind)
        if status is not None:
            return status
    return 500


def _headers_of(err: CommsgwError) -> dict[str, str] | None:
    if isinstance(err, NotificationRateLimited):
        return {"Retry-After": str(max(1, round(err.retry_after)))}
    if isinstance(err, EventLogUnavailable):
        return {"Retry-After": "1"}
    return None


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "message": message}}, status=status, headers=headers
    )


class RateLimiter:
    """A token bucket per source address: `rate` requests a second, bursts of twice that."""

    def __init__(self, rate: float, *, max_sources: int = 10_000) -> None:
        self._rate = rate
        # At least one request, whatever the rate: a burst below one token would refuse all.
        self._burst = max(1.0, 2 * rate)
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
        tones: ToneOrder | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._validator = validator
        self._tracing = tracing or Tracing()
        # Holds POSTs whose tones are early, until the earlier ones are stored (None: never).
        self.tones = tones
        self._log = log_
        self.max_bytes = max_bytes
        # An event that cannot fit in one gRPC message could never be delivered (every watch
        # it matches would fail on it, again after each resume): refused with 413 instead.
        self.max_event_bytes = max_event_bytes
        self._limiter = RateLimiter(rate) if rate else None
        self._metrics = metrics
        # Labelled metric children, looked up once (`labels()` costs more than `inc()`).
        self._by_status: dict[int, Any] = {}
        self._duration = metrics.webhook_latency
        self._outcomes: dict[str, Any] = {
            k: metrics.notifications.labels(k) for k in ("accepted", "duplicate", "rejected")
        }

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        outcome = _Outcome()
        if self._tracing.enabled:
            response = await self._traced(request, outcome)
        else:
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
        elapsed = time.perf_counter() - started
        self._duration.observe(elapsed)
        # An accepted POST is a DEBUG line (its count, notifications and duration are in the
        # metrics); every refusal stays INFO. The check first: building the fields costs too.
        level = logging.DEBUG if status == 202 else logging.INFO
        if not log.isEnabledFor(level):
            return response
        log.log(
            level,
            "webhook POST %d",
            status,
            extra={
                "webhook": request.path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "source": request.remote,
                "tenant": outcome.tenant,
                "notifications": outcome.appended + outcome.duplicates,
                "duplicates": outcome.duplicates,
                "reason": outcome.reason,
            },
        )
        return response

    async def _traced(self, request: web.Request, outcome: _Outcome) -> web.Response:
        tracer = self._tracing.tracer
        with tracer.start_as_current_span(
            "webhook POST",
            context=context_from(request.headers.items()),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "POST", "url.path": request.path},
        ) as span:
            outcome.span = span
            response = await self._handle(request, outcome)
            span.set_attribute("http.response.status_code", response.status)
            span.set_attribute("commsgw.notifications", outcome.appended + outcome.duplicates)
            if outcome.reason:
                span.set_attribute("commsgw.reason", outcome.reason)
            return response

    def _step(self, outcome: _Outcome, name: str) -> AbstractContextManager[object]:
        """A child span of the POST's for one step (nothing when not traced)."""
        if outcome.span is None:
            return _UNTRACED
        return self._tracing.tracer.start_as_current_span(name)

    async def _handle(self, request: web.Request, outcome: _Outcome) -> web.Response:
        try:
            result = await self._accept(request, outcome)
        except (NotificationError, EventLogUnavailable) as err:
            outcome.reason = err.message
            return _problem(http_status_of(err), err.message, _headers_of(err))
        outcome.appended = result.appended
        outcome.duplicates = result.duplicates
        return web.Response(status=202)

    async def _accept(self, request: web.Request, outcome: _Outcome) -> AppendResult:
        if self._limiter is not None:
            wait = self._limiter.allow(request.remote or "")
            if wait:
                raise NotificationRateLimited("too many requests", retry_after=wait)
        length = request.content_length
        if length is not None and length > self.max_bytes:
            raise NotificationTooLarge(f"body over {self.max_bytes} bytes")
        if request.content_type != "application/json":
            raise NotificationNotJson("Content-Type must be application/json")
        with self._step(outcome, "validate token"):
            claims = await self._validator.validate(request.headers.get("Authorization"))
        outcome.tenant = claims.tenant_id
        try:
            # aiohttp stops reading past client_max_size (max_bytes + 1, see build_app).
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise NotificationTooLarge(f"body over {self.max_bytes} bytes") from None
        if len(body) > self.max_bytes:
            raise NotificationTooLarge(f"body over {self.max_bytes} bytes")
        with self._step(outcome, "parse"):
            items = parse_notifications(body, tenant_id=claims.tenant_id)
        limit = self.max_event_bytes
        # An event is at most about twice its notification's size: only big bodies are sized.
        if limit is not None and 2 * len(body) + 1024 > limit:
            for index, item in enumerate(items):
                if item.event.ByteSize() > limit:
                    raise NotificationTooLarge(
                        f"notification value[{index}] is over {limit} bytes once parsed: too "
                        "large for a WatchOperations message"
                    )
        items = in_sequence(items)
        if self.tones is not None:
            await self.tones.hold(items)
        if outcome.span is None:
            return await self._log.append(items)
        with self._step(outcome, "append"):
            return await self._log.append(items, traceparent=traceparent_of(outcome.span))


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
