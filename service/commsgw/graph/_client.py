"""The Graph client: requests with retries, deadlines and Graph's error quirks.

Requests go to one connection pool (`commsgw.graph._transport`: HTTP/1.1 keep-alive) shared by
every request. Retries (`commsgw.graph._retry`): 429, 503, 504 and connection errors, bounded by
`graph_max_attempts` and by the caller's deadline: the gateway never sleeps past the deadline,
and the time left bounds each request. A 401 is retried once with a freshly acquired token.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import msgspec

from commsgw import __version__
from commsgw._config import Settings
from commsgw._errors import (
    DeadlineExceeded,
    GraphError,
    GraphOutcomeUnknown,
    GraphTimeout,
    GraphUnreachable,
)
from commsgw._tracing import Span, SpanKind, Status, StatusCode, Tracing
from commsgw.graph._action import Answer, GraphRequest, Retry
from commsgw.graph._responses import error_from_response
from commsgw.graph._retry import RETRYABLE_STATUS, backoff
from commsgw.graph._tokens import TokenProvider
from commsgw.graph._transport import Reply, Sender, SendFailed, SendTimeout

log = logging.getLogger("commsgw.graph")

_USER_AGENT = f"commsgw/{__version__}"
# An unsafe request is retried only after answers that say Graph did not act on it: 429
# (throttled before it was looked at). A 503 or 504 may come after Graph acted.
_UNSAFE_RETRYABLE_STATUS = frozenset({429})
# A retry is slept for only when at least this much of the caller's deadline would be left for
# the attempt. It also absorbs the difference between the caller's deadline and the one seen
# here: gRPC's timeout encoding may round the timeout it sends up (grpc core's
# timeout_encoding.h), and the server's clock conversions are not exact.
MIN_ATTEMPT_S = 0.1


class GraphClient:
    """Graph's calls API, as the gateway uses it."""

    def __init__(
        self,
        settings: Settings,
        sender: Sender,
        tokens: TokenProvider,
        *,
        rng: random.Random | None = None,
        on_attempt: Callable[[int | None, float, bool], None] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._s = settings
        self._tracing = tracing or Tracing()
        self._sender = sender
        self._tokens = tokens
        self._rng = rng or random.Random()
        self._on_attempt = on_attempt
        # Bounds the requests in flight so that a burst of cancels cannot exceed Graph's
        # per-app budget; waiting for a slot counts against the caller's deadline.
        self._slots = asyncio.Semaphore(settings.graph_concurrency)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        return backoff(
            attempt,
            retry_after,
            base_s=self._s.retry_base_s,
            max_s=self._s.retry_max_s,
            rng=self._rng,
        )

    async def send(
        self, req: GraphRequest, *, retry: Retry, crid: str, timeout: float | None = None
    ) -> Answer:
        """Send `req` to Graph, retrying as its retry class allows; Graph's 2xx answer.

        `timeout` is what is left of the caller's deadline (seconds), None for no deadline.
        """
        url = f"{self._s.graph_v1_url}{req.path}"
        body = msgspec.json.encode(req.body) if req.body is not None else b""
        resp = await self._send(
            req.method, url, body, tenant=req.tenant_id, crid=crid, timeout=timeout, retry=retry
        )
        return Answer.of(resp, crid)

    async def _send(
        self,
        method: str,
        url: str,
        body: bytes,
        *,
        tenant: str,
        crid: str,
        timeout: float | None,
        retry: Retry,
    ) -> Reply:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        attempt = 0
        refreshed = False
        stale: str | None = None
        while True:
            attempt += 1
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise _deadline_error(crid)
            token = await self._tokens.token(tenant, stale=stale)
            stale = None
            per_try = (
                self._s.graph_timeout_s
                if remaining is None
                else min(remaining, self._s.graph_timeout_s)
            )
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
                "client-request-id": crid,
                "return-client-request-id": "true",
            }
            try:
                async with asyncio.timeout(remaining):
                    await self._slots.acquire()
            except TimeoutError:
                raise _deadline_error(crid) from None
            started = time.perf_counter()
            span = self._attempt_span(method, url, attempt, crid) if self._tracing.enabled else None
            try:
                if deadline is not None:
                    per_try = min(per_try, max(0.001, deadline - loop.time()))
                if body:
                    headers["Content-Type"] = "application/json"
                resp = await self._sender.send(method, url, body, headers, per_try)
            except SendTimeout:
                self._note(None, started, attempt > 1, span, error="timeout")
                if deadline is not None and deadline - loop.time() <= 0.001:
                    raise _deadline_error(crid) from None
                # The request may have reached Graph: answer truthfully instead of retrying.
                raise GraphTimeout(
                    f"Graph did not answer within {per_try:.3g} s", client_request_id=crid
                ) from None
            except SendFailed as exc:
                self._note(None, started, attempt > 1, span, error=str(exc).split(":", 1)[0])
                if deadline is not None and deadline - loop.time() <= 0.001:
                    raise _deadline_error(crid) from None
                if retry is Retry.UNSAFE and exc.sent:
                    # The request may have reached Graph, which may have acted on it.
                    raise GraphOutcomeUnknown(
                        f"the connection to Graph broke after the request was sent ({exc}); "
                        "Graph may have acted on it, so it was not retried",
                        client_request_id=crid,
                    ) from None
                error: GraphError = GraphUnreachable(
                    f"Graph unreachable: {exc}", client_request_id=crid
                )
            else:
                self._note(resp.status, started, attempt > 1, span, resp=resp)
                if resp.status < 300:
                    return resp
                error = error_from_response(resp, crid)
                if resp.status == 401 and not refreshed:
                    log.info("Graph refused the token (401); refreshing it once")
                    refreshed = True
                    stale = token
                    attempt -= 1  # the forced refresh is not a retry
                    continue
                if resp.status not in (
                    RETRYABLE_STATUS if retry is Retry.IDEMPOTENT else _UNSAFE_RETRYABLE_STATUS
                ):
                    raise error
            finally:
                self._slots.release()
            if attempt >= self._s.graph_max_attempts:
                raise error
            delay = self._backoff(attempt, error.retry_after)
            if deadline is not None and loop.time() + delay + MIN_ATTEMPT_S >= deadline:
                # Sleeping would leave the next attempt no time before the caller's deadline:
                # answer now, truthfully (with Graph's Retry-After for the caller).
                raise error
            log.info(
                "Graph %s (%s); attempt %d of %d in %.2f s",
                error.http_status or "connection error",
                error.reason,
                attempt + 1,
                self._s.graph_max_attempts,
                delay,
            )
            await asyncio.sleep(delay)

    def _attempt_span(self, method: str, url: str, attempt: int, crid: str) -> Span:
        parts = urlsplit(url)
        return self._tracing.tracer.start_span(
            f"graph {method}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": parts.hostname or "",
                "url.path": parts.path,
                "commsgw.graph.attempt": attempt,
                "commsgw.graph.retry": attempt > 1,
                "commsgw.client_request_id": crid,
            },
        )

    def _note(
        self,
        status: int | None,
        started: float,
        retry: bool,
        span: Span | None,
        *,
        resp: Reply | None = None,
        error: str = "",
    ) -> None:
        if self._on_attempt is not None:
            self._on_attempt(status, time.perf_counter() - started, retry)
        if span is not None:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if resp is not None and (rid := resp.headers.get("request-id")):
                span.set_attribute("commsgw.graph_request_id", rid)
            if error or (status is not None and status >= 400):
                span.set_status(Status(StatusCode.ERROR, error or str(status)))
            if error:
                span.set_attribute("error.type", error)
            span.end()


def _deadline_error(crid: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        "the caller's deadline ran out before Graph answered", client_request_id=crid
    )
