"""The Graph client: requests with retries, deadlines and Graph's error quirks.

Requests go to one connection pool (`commsgw.graph._transport`: HTTP/1.1 keep-alive) shared by
every request. Retries (`commsgw.graph._retry`): 429, 503, 504 and connection errors, bounded by
`graph_max_attempts` and by the caller's deadline: the gateway never sleeps past the deadline,
and the time left bounds each request. A 401 is retried once with a freshly acquired token.
What to do after each attempt is `_retry.decide`'s (pure, on the injected clock); this module
does the I/O around it: tokens, the concurrency slots, sending, spans and the attempt hook.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import msgspec

from commsgw import __version__
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
from commsgw.graph._retry import (
    Clock,
    LoopClock,
    Outcome,
    Policy,
    Verdict,
    attempt_timeout,
    decide,
)
from commsgw.graph._transport import Reply, Sender, SendFailed, SendTimeout

log = logging.getLogger("commsgw.graph")

_USER_AGENT = f"commsgw/{__version__}"


class Tokens(Protocol):
    """Where the client gets its access tokens (`commsgw.graph.TokenProvider`)."""

    async def token(self, tenant: str, *, stale: str | None = None) -> str: ...


@dataclass(frozen=True, slots=True)
class GraphClientConfig:
    """What the Graph client needs of the gateway's configuration."""

    # Graph's v1.0 base URL, e.g. https://graph.microsoft.com/v1.0.
    v1_url: str
    # The longest single request (the caller's deadline cuts it shorter).
    timeout_s: float
    # Attempts per request for the retryable failures, and the backoff between them.
    max_attempts: int
    retry_base_s: float
    retry_max_s: float
    # Requests in flight at most.
    concurrency: int


class GraphClient:
    """Graph's calls API, as the gateway uses it."""

    def __init__(
        self,
        config: GraphClientConfig,
        sender: Sender,
        tokens: Tokens,
        *,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        on_attempt: Callable[[int | None, float, bool], None] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._config = config
        self._tracing = tracing or Tracing()
        self._sender = sender
        self._tokens = tokens
        self._clock = clock or LoopClock()
        self._policy = Policy(
            max_attempts=config.max_attempts,
            base_s=config.retry_base_s,
            max_s=config.retry_max_s,
            rng=rng or random.Random(),
        )
        self._on_attempt = on_attempt
        # Bounds the requests in flight so that a burst of cancels cannot exceed Graph's
        # per-app budget; waiting for a slot counts against the caller's deadline.
        self._slots = asyncio.Semaphore(config.concurrency)

    async def send(
        self, req: GraphRequest, *, retry: Retry, crid: str, timeout: float | None = None
    ) -> Answer:
        """Send `req` to Graph, retrying as its retry class allows; Graph's 2xx answer.

        `timeout` is what is left of the caller's deadline (seconds), None for no deadline.
        """
        # The retry loop is here, not in a coroutine of its own: one frame fewer per request.
        method, tenant = req.method, req.tenant_id
        url = f"{self._config.v1_url}{req.path}"
        body = msgspec.json.encode(req.body) if req.body is not None else b""
        clock = self._clock
        deadline = None if timeout is None else clock.now() + timeout
        attempt = 0
        refreshed = False
        stale: str | None = None
        while True:
            attempt += 1
            remaining = None if deadline is None else deadline - clock.now()
            if remaining is not None and remaining <= 0:
                raise _deadline_error(crid)
            token = await self._tokens.token(tenant, stale=stale)
            stale = None
            if self._slots.locked():  # waiting for a slot counts against the deadline
                try:
                    async with asyncio.timeout(remaining):
                        await self._slots.acquire()
                except TimeoutError:
                    raise _deadline_error(crid) from None
            else:  # a free slot is taken at once: no timer to arm and cancel
                await self._slots.acquire()
            try:
                per_try = attempt_timeout(self._config.timeout_s, clock.now(), deadline)
                resp, outcome, failure = await self._attempt(
                    method, url, body, _headers(token, crid, body), per_try, attempt, crid
                )
            finally:
                self._slots.release()
            error: GraphError | None = None
            if resp is not None and resp.status >= 300:
                error = error_from_response(resp, crid)
                outcome = Outcome(resp.status, error.retry_after)
            elif failure is not None and not outcome.timed_out:
                error = GraphUnreachable(f"Graph unreachable: {failure}", client_request_id=crid)
            decision = decide(
                attempt,
                outcome,
                retry,
                clock.now(),
                deadline,
                refreshed=refreshed,
                policy=self._policy,
            )
            match decision.verdict:
                case Verdict.DONE:
                    assert resp is not None
                    return Answer.of(resp, crid)
                case Verdict.REFRESH:
                    log.info("Graph refused the token (401); refreshing it once")
                    refreshed = True
                    stale = token
                    attempt -= 1  # the forced refresh is not a retry
                    continue
                case Verdict.DEADLINE:
                    raise _deadline_error(crid)
                case Verdict.TIMEOUT:
                    raise GraphTimeout(
                        f"Graph did not answer within {per_try:.3g} s", client_request_id=crid
                    )
                case Verdict.OUTCOME_UNKNOWN:
                    raise GraphOutcomeUnknown(
                        f"the connection to Graph broke after the request was sent ({failure}); "
                        "Graph may have acted on it, so it was not retried",
                        client_request_id=crid,
                    )
                case Verdict.FAIL:
                    assert error is not None
                    raise error
                case Verdict.RETRY:
                    assert error is not None
                    log.info(
                        "Graph %s (%s); attempt %d of %d in %.2f s",
                        error.http_status or "connection error",
                        error.reason,
                        attempt + 1,
                        self._policy.max_attempts,
                        decision.delay,
                    )
                    await clock.sleep(decision.delay)

    async def _attempt(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        per_try: float,
        attempt: int,
        crid: str,
    ) -> tuple[Reply | None, Outcome, SendFailed | SendTimeout | None]:
        """One request to Graph, timed, traced and reported to the attempt hook: the reply, or
        what the failed send came to (and its exception)."""
        started = time.perf_counter()
        span = self._attempt_span(method, url, attempt, crid) if self._tracing.enabled else None
        try:
            resp = await self._sender.send(method, url, body, headers, per_try)
        except SendTimeout as exc:
            self._note(None, started, attempt > 1, span, error="timeout")
            return None, Outcome(timed_out=True), exc
        except SendFailed as exc:
            self._note(None, started, attempt > 1, span, error=exc.kind)
            return None, Outcome(sent=exc.sent), exc
        self._note(resp.status, started, attempt > 1, span, resp=resp)
        return resp, Outcome(resp.status), None

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


def _headers(token: str, crid: str, body: bytes) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "User-Agent": _USER_AGENT,
        "client-request-id": crid,
        "return-client-request-id": "true",
    }
    if body:
        headers["Content-Type"] = "application/json"
    return headers


def _deadline_error(crid: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        "the caller's deadline ran out before Graph answered", client_request_id=crid
    )
