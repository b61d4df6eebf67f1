"""The Graph client: cancelMediaProcessing with retries, deadlines and Graph's error quirks.

One httpx.AsyncClient (connection pooling, HTTP/1.1 keep-alive) is shared by every request.
Retries: 429, 503, 504 and connection errors are retried after Retry-After, else after an
exponential backoff with full jitter, bounded by `graph_max_attempts` and by the caller's
deadline: the gateway never sleeps past the deadline, and the time left bounds each request.
A 401 is retried once with a freshly acquired token.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import grpc
import httpx
import msgspec

from commsgw import __version__
from commsgw._auth import TokenProvider
from commsgw._config import Settings
from commsgw._errors import GraphError, InvalidArgument
from commsgw._ids import normalize_guid

log = logging.getLogger("commsgw.graph")

_USER_AGENT = f"commsgw/{__version__}"

MAX_CLIENT_CONTEXT = 256
RETRYABLE_STATUS = frozenset({429, 503, 504})

HTTP_TO_GRPC: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ABORTED,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}


def grpc_code_for_http(status: int) -> grpc.StatusCode:
    code = HTTP_TO_GRPC.get(status)
    if code is not None:
        return code
    if 400 <= status < 500:
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^A-Za-z0-9]+")


def upper_snake(code: str) -> str:
    """Graph's error code in UPPER_SNAKE form: activityLimitReached -> ACTIVITY_LIMIT_REACHED."""
    spaced = _CAMEL_BOUNDARY.sub("_", code.strip())
    return _NON_WORD.sub("_", spaced).strip("_").upper() or "UNKNOWN_GRAPH_ERROR"


@dataclass(frozen=True, slots=True)
class CommsOperation:
    """A commsOperation as Graph returned it."""

    id: str
    odata_type: str
    status: str
    client_context: str
    result_code: int = 0
    result_subcode: int = 0
    result_message: str = ""


@dataclass(frozen=True, slots=True)
class CancelResult:
    operation: CommsOperation
    location: str
    request_id: str
    client_request_id: str


@dataclass(frozen=True, slots=True)
class CancelCommand:
    """A validated cancelMediaProcessing request."""

    call_id: str
    client_context: str
    tenant_id: str
    client_request_id: str


def validate_cancel(
    settings: Settings,
    *,
    call_id: str,
    client_context: str,
    tenant_id: str,
    client_request_id: str | None,
) -> CancelCommand:
    """Check a caller's input before anything is sent to Graph."""
    if not call_id:
        raise InvalidArgument("call_id is required", reason="INVALID_CALL_ID")
    norm = normalize_guid(call_id)
    if norm is None:
        raise InvalidArgument("call_id must be a Graph call id (a GUID)", reason="INVALID_CALL_ID")
    if len(client_context) > MAX_CLIENT_CONTEXT:
        raise InvalidArgument(
            f"client_context has {len(client_context)} characters; Graph allows at most "
            f"{MAX_CLIENT_CONTEXT}",
            reason="CLIENT_CONTEXT_TOO_LONG",
        )
    tenant = settings.tenant_id
    if tenant_id:
        t = normalize_guid(tenant_id)
        if t is None or t not in settings.tenants:
            raise InvalidArgument(
                "tenant_id is not a tenant this gateway is configured for",
                reason="UNKNOWN_TENANT",
            )
        tenant = t
    crid = client_request_id or str(uuid.uuid4())
    if len(crid) > 128 or not crid.isprintable():
        raise InvalidArgument(
            "x-client-request-id must be printable and at most 128 characters",
            reason="INVALID_CLIENT_REQUEST_ID",
        )
    return CancelCommand(norm, client_context, tenant, crid)


def _lower_keys(obj: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in obj.items()} if isinstance(obj, dict) else {}


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now())
    except (TypeError, ValueError, IndexError):
        return None


def error_from_response(resp: httpx.Response, client_request_id: str) -> GraphError:
    """A GraphError from a Graph error response (keys read case-insensitively)."""
    try:
        body = msgspec.json.decode(resp.content)
    except msgspec.DecodeError:
        body = None
    err = _lower_keys(_lower_keys(body).get("error"))
    inner = _lower_keys(err.get("innererror"))
    graph_code = str(err.get("code") or "")
    message = str(err.get("message") or "") or resp.reason_phrase or "Graph error"
    request_id = resp.headers.get("request-id") or str(inner.get("request-id") or "")
    reason = upper_snake(graph_code) if graph_code else f"GRAPH_HTTP_{resp.status_code}"
    return GraphError(
        f"Graph answered {resp.status_code}"
        + (f" {graph_code}" if graph_code else "")
        + f": {message}",
        code=grpc_code_for_http(resp.status_code),
        reason=reason,
        http_status=resp.status_code,
        request_id=request_id,
        client_request_id=client_request_id,
        retry_after=parse_retry_after(resp.headers.get("retry-after")),
    )


class GraphClient:
    """Graph's calls API, as the gateway uses it."""

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport,
        tokens: TokenProvider,
        *,
        rng: random.Random | None = None,
        on_attempt: Callable[[int | None, float, bool], None] | None = None,
    ) -> None:
        self._s = settings
        # Requests go straight to the transport: the AsyncClient layer (cookie jar, redirects,
        # auth flow, URL merging) costs about as much CPU per request as the aiohttp transport
        # itself (profiled under the cancel benchmark) and none of it applies to Graph calls,
        # which carry their own bearer token, never redirect and must not share cookies across
        # tenants.
        self._transport = transport
        self._tokens = tokens
        self._rng = rng or random.Random()
        self._on_attempt = on_attempt
        # Bounds the requests in flight so that a burst of cancels cannot exceed Graph's
        # per-app budget; waiting for a slot counts against the caller's deadline.
        self._slots = asyncio.Semaphore(settings.graph_concurrency)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._s.retry_max_s)
        cap = min(self._s.retry_max_s, self._s.retry_base_s * (2 ** (attempt - 1)))
        return self._rng.uniform(0, cap)

    async def cancel_media_processing(
        self, cmd: CancelCommand, *, timeout: float | None = None
    ) -> CancelResult:
        """POST /communications/calls/{id}/cancelMediaProcessing.

        `timeout` is what is left of the caller's deadline (seconds), None for no deadline.
        """
        url = f"{self._s.graph_v1_url}/communications/calls/{cmd.call_id}/cancelMediaProcessing"
        body = msgspec.json.encode({"clientContext": cmd.client_context})
        resp = await self._send(
            "POST", url, body, tenant=cmd.tenant_id, crid=cmd.client_request_id, timeout=timeout
        )
        return _cancel_result(resp, cmd.client_request_id)

    async def _send(
        self,
        method: str,
        url: str,
        body: bytes,
        *,
        tenant: str,
        crid: str,
        timeout: float | None,
    ) -> httpx.Response:
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
                "Content-Type": "application/json",
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
            try:
                if deadline is not None:
                    per_try = min(per_try, max(0.001, deadline - loop.time()))
                request = httpx.Request(
                    method,
                    url,
                    content=body,
                    headers=headers,
                    extensions={"timeout": httpx.Timeout(per_try).as_dict()},
                )
                resp = await self._transport.handle_async_request(request)
                try:
                    await resp.aread()
                finally:
                    await resp.aclose()
            except (httpx.ReadTimeout, httpx.WriteTimeout):
                self._note(None, started, attempt > 1)
                if deadline is not None and deadline - loop.time() <= 0.001:
                    raise _deadline_error(crid) from None
                # The request may have reached Graph: answer truthfully instead of retrying.
                raise GraphError(
                    f"Graph did not answer within {per_try:.3g} s",
                    code=grpc.StatusCode.DEADLINE_EXCEEDED,
                    reason="GRAPH_TIMEOUT",
                    client_request_id=crid,
                ) from None
            except httpx.TransportError as exc:
                self._note(None, started, attempt > 1)
                if deadline is not None and deadline - loop.time() <= 0.001:
                    raise _deadline_error(crid) from None
                error = GraphError(
                    f"Graph unreachable: {type(exc).__name__}: {exc}",
                    code=grpc.StatusCode.UNAVAILABLE,
                    reason="GRAPH_UNREACHABLE",
                    client_request_id=crid,
                )
            else:
                self._note(resp.status_code, started, attempt > 1)
                if resp.status_code < 300:
                    return resp
                error = error_from_response(resp, crid)
                if resp.status_code == 401 and not refreshed:
                    log.info("Graph refused the token (401); refreshing it once")
                    refreshed = True
                    stale = token
                    attempt -= 1  # the forced refresh is not a retry
                    continue
                if resp.status_code not in RETRYABLE_STATUS:
                    raise error
            finally:
                self._slots.release()
            if attempt >= self._s.graph_max_attempts:
                raise error
            delay = self._backoff(attempt, error.retry_after)
            if deadline is not None and loop.time() + delay >= deadline:
                # Sleeping would pass the caller's deadline: answer now, truthfully.
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

    def _note(self, status: int | None, started: float, retry: bool) -> None:
        if self._on_attempt is not None:
            self._on_attempt(status, time.perf_counter() - started, retry)


def _deadline_error(crid: str) -> GraphError:
    return GraphError(
        "the caller's deadline ran out before Graph answered",
        code=grpc.StatusCode.DEADLINE_EXCEEDED,
        reason="DEADLINE_EXCEEDED",
        client_request_id=crid,
    )


def _cancel_result(resp: httpx.Response, crid: str) -> CancelResult:
    request_id = resp.headers.get("request-id", "")
    try:
        body = msgspec.json.decode(resp.content)
    except msgspec.DecodeError:
        body = None
    if not isinstance(body, dict):
        raise GraphError(
            f"Graph answered {resp.status_code} with a body that is not a commsOperation",
            code=grpc.StatusCode.INTERNAL,
            reason="GRAPH_BAD_RESPONSE",
            http_status=resp.status_code,
            request_id=request_id,
            client_request_id=crid,
        )
    result = body.get("resultInfo")
    ri: Mapping[str, Any] = result if isinstance(result, dict) else {}
    op = CommsOperation(
        id=normalize_guid(str(body.get("id") or "")) or str(body.get("id") or ""),
        odata_type=str(
            body.get("@odata.type") or "#microsoft.graph.cancelMediaProcessingOperation"
        ),
        status=str(body.get("status") or ""),
        client_context=str(body.get("clientContext") or ""),
        result_code=_int(ri.get("code")),
        result_subcode=_int(ri.get("subcode")),
        result_message=str(ri.get("message") or ""),
    )
    return CancelResult(op, resp.headers.get("location", ""), request_id, crid)
