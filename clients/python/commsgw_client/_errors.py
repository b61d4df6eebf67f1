"""The exceptions the client library raises: one per gRPC status the gateway documents."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from graphcomms.v1 import calls_pb2

__all__ = [
    "AbortedError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "GatewayError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OperationNotDoneError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "ResumeTokenExpiredError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "from_rpc_error",
]


class GatewayError(Exception):
    """A call to the gateway failed with a non-OK gRPC status.

    Attributes:
        code: the gRPC status code.
        message: the status message.
        reason: the ErrorInfo reason (e.g. ``RESUME_TOKEN_EXPIRED``, ``NOT_FOUND``), or "".
        domain: the ErrorInfo domain (``commsgw``), or "".
        metadata: the ErrorInfo metadata (``http_status``, ``graph_request_id``, ...).
        graph_request_id: Graph's request-id (for support cases with Microsoft), or "".
        client_request_id: the client-request-id sent to Graph, or "".
        retry_after: the RetryInfo delay in seconds when the gateway sent one, else None.

    ``str(err)`` is one line: ``CODE: message (reason=..., graph_request_id=...)``.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        graph_request_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.graph_request_id = graph_request_id or self.metadata.get("graph_request_id", "")
        self.client_request_id = self.metadata.get("client_request_id", "")
        self.retry_after = retry_after
        super().__init__(self.__str__())

    def __str__(self) -> str:
        line = f"{self.code.name}: {self.message}"
        extra = [f"reason={self.reason}"] if self.reason else []
        if self.graph_request_id:
            extra.append(f"graph_request_id={self.graph_request_id}")
        return f"{line} ({', '.join(extra)})" if extra else line

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__str__()!r})"


class InvalidArgumentError(GatewayError):
    """INVALID_ARGUMENT: bad input (refused before Graph), or Graph's 400."""


class UnauthenticatedError(GatewayError):
    """UNAUTHENTICATED: the gateway (or Graph) did not accept the credentials."""


class PermissionDeniedError(GatewayError):
    """PERMISSION_DENIED: Graph's 403, or the caller may not do this."""


class NotFoundError(GatewayError):
    """NOT_FOUND: no such call (or it has ended)."""


class AbortedError(GatewayError):
    """ABORTED: Graph's 409."""


class ResourceExhaustedError(GatewayError):
    """RESOURCE_EXHAUSTED: Graph's 429, or a watch cut off as SUBSCRIBER_TOO_SLOW."""


class ResumeTokenExpiredError(GatewayError):
    """OUT_OF_RANGE (reason RESUME_TOKEN_EXPIRED): the event log no longer holds the token's
    position (or the token comes from another log). Events after it may be lost: start a new
    watch without a token, with ``include_snapshot=True``."""


class InternalError(GatewayError):
    """INTERNAL: Graph's 500 or an unexpected answer."""


class UnavailableError(GatewayError):
    """UNAVAILABLE: the gateway or Graph cannot be reached right now."""


class DeadlineExceededError(GatewayError):
    """DEADLINE_EXCEEDED: the deadline ran out."""


class OperationNotDoneError(DeadlineExceededError):
    """DEADLINE_EXCEEDED (reason OPERATION_NOT_DONE): a wait for an operation ended before the
    operation was COMPLETED or FAILED.

    ``operation`` is the last known state of the operation (the ``graphcomms.v1.Operation`` the
    gateway packed in the status details, or the one the media RPC answered when the wait could
    not even begin), None when nothing is known. Wait again with its id to go on waiting.
    """

    operation: calls_pb2.Operation | None = None


class FailedPreconditionError(GatewayError):
    """FAILED_PRECONDITION: the gateway cannot do this as configured (e.g.
    CALLBACK_URI_NOT_CONFIGURED, NOT_IN_THIS_CLOUD), or another 4xx from Graph."""


class UnimplementedError(GatewayError):
    """UNIMPLEMENTED: the gateway does not serve this RPC (an older gateway), or Graph's 501."""


_BY_CODE: dict[grpc.StatusCode, type[GatewayError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.OUT_OF_RANGE: ResumeTokenExpiredError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}

OPERATION_NOT_DONE = "OPERATION_NOT_DONE"


def _trailers(err: grpc.RpcError) -> list[tuple[str, str | bytes]]:
    trailing = getattr(err, "trailing_metadata", None)
    if trailing is None:
        return []
    try:
        return [(str(k), v) for k, v in (trailing() or ())]
    except Exception:  # a call without trailers (e.g. cancelled locally)
        return []


def _status(err: grpc.RpcError) -> status_pb2.Status | None:
    try:
        status: status_pb2.Status | None = rpc_status.from_call(err)
        return status
    except Exception:  # code/message mismatch or a malformed trailer: keep what we know
        return None


def from_rpc_error(err: grpc.RpcError) -> GatewayError:
    """The typed exception for a failed gRPC call (sync or asyncio), with the ErrorInfo and
    RetryInfo of the ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer."""
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code: grpc.StatusCode = code_fn() if code_fn is not None else grpc.StatusCode.UNKNOWN
    message: str = (details_fn() if details_fn is not None else None) or str(err)
    reason = domain = ""
    metadata: dict[str, str] = {}
    retry_after: float | None = None
    operation: calls_pb2.Operation | None = None
    status = _status(err)
    if status is not None:
        for any_ in status.details:
            if any_.Is(calls_pb2.Operation.DESCRIPTOR):
                operation = calls_pb2.Operation()
                any_.Unpack(operation)
            elif any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                any_.Unpack(info)
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif any_.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                any_.Unpack(retry)
                retry_after = retry.retry_delay.ToTimedelta().total_seconds()
    graph_request_id = metadata.get("graph_request_id", "")
    if not graph_request_id:
        for key, value in _trailers(err):
            if key == "x-graph-request-id" and isinstance(value, str):
                graph_request_id = value
    cls = _BY_CODE.get(code, GatewayError)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and reason == OPERATION_NOT_DONE:
        cls = OperationNotDoneError
    error = cls(
        code,
        message,
        reason=reason,
        domain=domain,
        metadata=metadata,
        graph_request_id=graph_request_id,
        retry_after=retry_after,
    )
    if isinstance(error, OperationNotDoneError):
        error.operation = operation
    return error
