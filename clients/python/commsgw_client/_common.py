"""What the asyncio and the blocking clients share: options, metadata (with the caller's
OpenTelemetry trace context), requests, backoff, how a media RPC's operation is waited for, and
the watch's resume decisions (:class:`WatchResume`, no I/O)."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import random
import time
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

import grpc

from graphcomms.v1 import call_types_pb2, calls_pb2

from ._errors import OPERATION_NOT_DONE, GatewayError, OperationNotDoneError, UnavailableError

TokenSource = str | Callable[[], str]
"""A bearer token, or a function returning the current one (called before every RPC)."""

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
"""Watch failures that are resumed with the last token (plus a stream that simply closed),
except the reasons in NOT_RESUMED."""

NOT_RESUMED = frozenset({"TOO_MANY_STREAMS"})
"""Reasons that are raised, not resumed: the gateway's stream limit is reached, and resuming in
a loop would only add load (close other streams, or back off in the application)."""


def resumes(code: grpc.StatusCode, reason: str) -> bool:
    """Whether a watch that failed with this status resumes by itself."""
    return code in RETRYABLE and reason not in NOT_RESUMED


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How a watch resumes: exponential backoff with jitter, bounded.

    The n-th consecutive failed attempt (n = 0, 1, ...) waits a random time in
    ``[d/2, d]`` with ``d = min(max_backoff, initial_backoff * multiplier**n)``, or the gateway's
    RetryInfo delay when it is longer (still at most ``max_backoff``). Any response received
    resets the count. When ``max_attempts`` reconnects in a row brought no response (None: never
    give up), the next failure is raised.
    """

    initial_backoff: float = 0.2
    max_backoff: float = 10.0
    multiplier: float = 2.0
    max_attempts: int | None = None

    def delay(
        self, attempt: int, hint: float | None = None, rng: random.Random | None = None
    ) -> float:
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** min(attempt, 64))
        wait = (rng or random).uniform(ceiling / 2, ceiling)
        if hint is not None and hint > wait:
            wait = hint
        return min(wait, self.max_backoff)


TraceMetadata = tuple[tuple[str, str], ...]
"""The trace context of a call as gRPC metadata (``traceparent``, ``tracestate``, ...)."""


def _trace_context_injector() -> Callable[[], TraceMetadata]:
    """How the active OpenTelemetry context becomes metadata: with ``opentelemetry.propagate``
    (the configured propagator; W3C trace context and baggage by default) when the
    opentelemetry API is installed, else nothing. Resolved once, at import."""
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        return lambda: ()

    def inject() -> TraceMetadata:
        if not trace.get_current_span().get_span_context().is_valid:
            return ()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return tuple(
            (key.lower(), value)
            for key, value in carrier.items()
            if isinstance(value, str) and not key.lower().endswith("-bin")
        )

    return inject


trace_metadata: Callable[[], TraceMetadata] = _trace_context_injector()
"""The active OpenTelemetry context as gRPC metadata: () when there is no valid active span or
the opentelemetry API is not installed (it is an optional dependency of the client)."""


def call_metadata(
    bearer_token: TokenSource | None,
    client_request_id: str | None = None,
    trace_context: TraceMetadata | None = None,
) -> tuple[tuple[str, str], ...]:
    """A call's metadata: bearer token, client request id and trace context (None: the active
    OpenTelemetry context's, see :func:`trace_metadata`)."""
    md: list[tuple[str, str]] = []
    if bearer_token is not None:
        token = bearer_token() if callable(bearer_token) else bearer_token
        if token:
            md.append(("authorization", f"Bearer {token}"))
    if client_request_id:
        md.append(("x-client-request-id", client_request_id))
    md.extend(trace_metadata() if trace_context is None else trace_context)
    return tuple(md)


def deadline(timeout: float | None, default: float | None) -> float | None:
    """The deadline (seconds) of a call: `timeout`, else the client's default."""
    return default if timeout is None else timeout


Prompt = str | call_types_pb2.MediaInfo
"""An audio file for Graph to play: its https URI, or a ``MediaInfo`` (with a ``resource_id``
Graph caches it under)."""


def media(prompts: Iterable[Prompt]) -> list[call_types_pb2.MediaInfo]:
    return [call_types_pb2.MediaInfo(uri=p) if isinstance(p, str) else p for p in prompts]


def set_meeting(
    request: calls_pb2.CreateCallRequest,
    join_url: str | None,
    join_meeting_id: call_types_pb2.JoinMeetingId | None,
) -> calls_pb2.CreateCallRequest:
    """Fill CreateCallRequest's `meeting` oneof (one of the two, or neither)."""
    if join_url is not None and join_meeting_id is not None:
        raise ValueError("join_url and join_meeting_id exclude each other")
    if join_url is not None:
        request.join_url = join_url
    elif join_meeting_id is not None:
        request.join_meeting_id.CopyFrom(join_meeting_id)
    return request


# ---- waiting for an operation ------------------------------------------------------------

TERMINAL = frozenset({calls_pb2.OPERATION_STATUS_COMPLETED, calls_pb2.OPERATION_STATUS_FAILED})
MAX_WAIT_S = 3600.0
"""The longest WaitOperation.timeout the gateway accepts."""
MIN_WAIT_S = 0.001
WAIT_MARGIN_S = 1.0
"""The gateway is asked to stop waiting this long (at most; a tenth of short waits) before the
call's deadline, so that its OPERATION_NOT_DONE, with the last known operation, arrives before
the deadline ends the call."""


class OperationRequest(Protocol):
    """What every media request has: the call (and tenant) its operation belongs to."""

    call_id: str
    tenant_id: str


class OperationResponse(Protocol):
    """What every media response has: the operation Graph started."""

    @property
    def operation(self) -> calls_pb2.Operation: ...


OperationRequestT = TypeVar("OperationRequestT", bound=OperationRequest)
OperationResponseT = TypeVar("OperationResponseT", bound=OperationResponse)


@dataclasses.dataclass(frozen=True)
class Wait:
    """A WaitOperation call to make: the request and the call's deadline (seconds)."""

    request: calls_pb2.WaitOperationRequest
    timeout: float | None


def wait_for(call_id: str, operation_id: str, tenant_id: str, timeout: float | None) -> Wait:
    """WaitOperation for at most `timeout` seconds (None: the gateway's COMMSGW_MAX_WAIT_S, at
    most an hour a call)."""
    request = calls_pb2.WaitOperationRequest(
        call_id=call_id, tenant_id=tenant_id, operation_id=operation_id
    )
    if timeout is not None:
        wait_s = timeout - min(WAIT_MARGIN_S, timeout / 10)
        request.timeout.FromTimedelta(
            datetime.timedelta(seconds=min(MAX_WAIT_S, max(MIN_WAIT_S, wait_s)))
        )
    return Wait(request, timeout)


def wait_after(
    request: OperationRequest,
    operation: calls_pb2.Operation,
    timeout: float | None,
    started: float,
) -> Wait | None:
    """The wait for the `operation` a media RPC answered, what is left of `timeout` (seconds
    since the monotonic time `started`) bounding it; None when the operation is already
    COMPLETED or FAILED. OperationNotDoneError (with that operation) when no time is left."""
    if operation.status in TERMINAL:
        return None
    left = None if timeout is None else timeout - (time.monotonic() - started)
    if left is not None and left < MIN_WAIT_S:
        err = OperationNotDoneError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"operation {operation.id} is not done: no time was left to wait for it",
            reason=OPERATION_NOT_DONE,
        )
        err.operation = operation
        raise err
    return wait_for(request.call_id, operation.id, request.tenant_id, left)


def watch_request(
    *,
    call_ids: Iterable[str],
    tenant_ids: Iterable[str],
    operation_types: Iterable[calls_pb2.OperationType.ValueType],
    statuses: Iterable[calls_pb2.OperationStatus.ValueType],
    client_context: str,
    include_call_updates: bool,
    include_other: bool,
    include_snapshot: bool,
    resume_token: str,
) -> calls_pb2.WatchOperationsRequest:
    return calls_pb2.WatchOperationsRequest(
        max_events_per_response=WATCH_BATCH,
        call_ids=list(call_ids),
        tenant_ids=list(tenant_ids),
        operation_types=list(operation_types),
        statuses=list(statuses),
        client_context=client_context,
        include_call_updates=include_call_updates,
        include_other=include_other,
        include_snapshot=include_snapshot,
        resume_token=resume_token,
    )


WATCH_BATCH = 64
"""The watches ask for up to this many events per message (a backlog costs fewer messages);
they still hand their user one event at a time, each with its own resume token."""


def unbatched(resp: calls_pb2.WatchOperationsResponse) -> list[calls_pb2.WatchOperationsResponse]:
    """The responses a response stands for: its batch's elements, in order, or itself."""
    return list(resp.batch) if resp.batch else [resp]


def resumed(
    request: calls_pb2.WatchOperationsRequest, token: str
) -> calls_pb2.WatchOperationsRequest:
    """The request that continues after `token` (the original one while there is none)."""
    if not token:
        return request
    again = calls_pb2.WatchOperationsRequest()
    again.CopyFrom(request)
    again.resume_token = token
    again.include_snapshot = False
    return again


Response = calls_pb2.WatchOperationsResponse


class WatchResume:
    """What a watch that resumes by itself decides, without I/O: the request each (re)connect
    sends, what a received message hands out (one event at a time, bookmarks or not), and after
    a failure whether to resume and after how long. Both clients' watches drive one.

    ``resume_token`` is the token of the last response handed out or skipped (a batch's events
    one by one), ``reconnects`` the resumes so far, ``last_error`` the error last resumed
    after.
    """

    def __init__(
        self,
        request: calls_pb2.WatchOperationsRequest,
        retry: RetryPolicy,
        *,
        bookmarks: bool,
        rng: random.Random | None = None,
    ) -> None:
        self._request = request
        self._retry = retry
        self._bookmarks = bookmarks
        self._rng = rng
        self.resume_token: str = request.resume_token
        self.reconnects = 0
        self.last_error: GatewayError | None = None
        self._failures = 0  # consecutive failures since the last message
        # Events of a batch received but not handed out yet (WatchOperationsResponse.batch).
        self._pending: collections.deque[Response] = collections.deque()

    def connect(self) -> calls_pb2.WatchOperationsRequest:
        """The request of the next (re)connect: after the last token, once there is one."""
        return resumed(self._request, self.resume_token)

    def pending(self) -> Response | None:
        """The next event of a batch already received (None: none left); the resume token
        moves to just after it."""
        if not self._pending:
            return None
        resp = self._pending.popleft()
        self.resume_token = resp.resume_token
        return resp

    def received(self, resp: Response) -> Response | None:
        """A message arrived: what to hand out now (None: nothing, e.g. a bookmark not
        wanted; its token is tracked all the same). Any message resets the failure count."""
        self._failures = 0
        if resp.batch:
            self._pending.extend(unbatched(resp))
            return self.pending()
        self.resume_token = resp.resume_token
        if not self._bookmarks and resp.WhichOneof("kind") == "bookmark":
            return None
        return resp

    def closed(self) -> GatewayError:
        """The failure a stream that closed without an error counts as (it is resumed)."""
        return UnavailableError(grpc.StatusCode.UNAVAILABLE, "the watch stream closed")

    def failed(self, error: GatewayError) -> float | None:
        """The stream failed with `error`: the seconds to wait before resuming, or None when
        the watch gives up and raises it (a status that does not resume, see :func:`resumes`,
        or ``max_attempts`` reconnects in a row without a message)."""
        if not resumes(error.code, error.reason):
            return None
        self.last_error = error
        if self._retry.max_attempts is not None and self._failures >= self._retry.max_attempts:
            return None
        delay = self._retry.delay(self._failures, error.retry_after, self._rng)
        self._failures += 1
        self.reconnects += 1
        return delay
