"""The one place where errors become gRPC statuses.

`code_of` is the table: an error's kind (its class) chooses the code, and for an error Graph
answered, Graph's HTTP status does. `to_status` adds the google.rpc.Status details (ErrorInfo,
RetryInfo). The interceptor answers anything that is not a CommsgwError INTERNAL through
`internal_error`, so no failure reaches a caller as UNKNOWN.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2, message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from commsgw._errors import (
    CommsgwError,
    ConfigError,
    DeadlineExceeded,
    EventLogUnavailable,
    FailedPrecondition,
    GraphBadResponse,
    GraphError,
    GraphOutcomeUnknown,
    GraphTimeout,
    GraphUnreachable,
    InvalidArgument,
    NotificationError,
    OperationNotDone,
    PermissionDenied,
    ResumeTokenExpired,
    ShuttingDown,
    SubscriberTooSlow,
    TokenError,
    TooManyStreams,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("commsgw.status")

ERROR_DOMAIN = "commsgw"
GRAPH_REQUEST_ID_KEY = "x-graph-request-id"
CLIENT_REQUEST_ID_KEY = "x-client-request-id"

Code = grpc.StatusCode

# The kind of error -> its code. Looked up along the class's MRO, so a new subclass inherits its
# parent's code unless it is listed.
BY_KIND: dict[type[CommsgwError], Code] = {
    InvalidArgument: Code.INVALID_ARGUMENT,
    FailedPrecondition: Code.FAILED_PRECONDITION,
    OperationNotDone: Code.DEADLINE_EXCEEDED,
    GraphOutcomeUnknown: Code.UNAVAILABLE,
    Unauthenticated: Code.UNAUTHENTICATED,
    PermissionDenied: Code.PERMISSION_DENIED,
    TooManyStreams: Code.RESOURCE_EXHAUSTED,
    GraphUnreachable: Code.UNAVAILABLE,
    GraphTimeout: Code.DEADLINE_EXCEEDED,
    GraphBadResponse: Code.INTERNAL,
    DeadlineExceeded: Code.DEADLINE_EXCEEDED,
    TokenError: Code.UNAUTHENTICATED,
    ResumeTokenExpired: Code.OUT_OF_RANGE,
    SubscriberTooSlow: Code.RESOURCE_EXHAUSTED,
    Unavailable: Code.UNAVAILABLE,
    EventLogUnavailable: Code.UNAVAILABLE,
    ShuttingDown: Code.UNAVAILABLE,
    ConfigError: Code.FAILED_PRECONDITION,
    NotificationError: Code.INVALID_ARGUMENT,
    CommsgwError: Code.INTERNAL,
}

# Graph's HTTP status -> the code of a GraphError it answered with; other 4xx are
# FAILED_PRECONDITION, other statuses INTERNAL.
BY_HTTP_STATUS: dict[int, Code] = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    408: Code.DEADLINE_EXCEEDED,
    409: Code.ABORTED,
    412: Code.FAILED_PRECONDITION,
    429: Code.RESOURCE_EXHAUSTED,
    500: Code.INTERNAL,
    501: Code.UNIMPLEMENTED,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.UNAVAILABLE,
}


def code_for_http(status: int) -> Code:
    """The code of a Graph error answer with this HTTP status."""
    code = BY_HTTP_STATUS.get(status)
    if code is not None:
        return code
    return Code.FAILED_PRECONDITION if 400 <= status < 500 else Code.INTERNAL


def code_of(err: BaseException) -> Code:
    """The gRPC code `err` stands for (INTERNAL for anything not raised on purpose)."""
    if not isinstance(err, CommsgwError):
        return Code.INTERNAL
    if type(err) is GraphError and err.http_status is not None:
        return code_for_http(err.http_status)
    for kind in type(err).__mro__:
        code = BY_KIND.get(kind)
        if code is not None:
            return code
    return Code.INTERNAL


def to_status(err: CommsgwError) -> grpc.Status:
    """The gRPC status (code, message, rich details) that `err` stands for."""
    details: list[any_pb2.Any] = []
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=ERROR_DOMAIN)
    for k, v in err.metadata.items():
        info.metadata[k] = v
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if isinstance(err, OperationNotDone) and isinstance(err.operation, message.Message):
        packed = any_pb2.Any()
        packed.Pack(err.operation)
        details.append(packed)
    if isinstance(err, GraphError) and err.retry_after is not None:
        frac, whole = math.modf(err.retry_after)
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(whole), nanos=int(frac * 1e9))
        )
        packed = any_pb2.Any()
        packed.Pack(retry)
        details.append(packed)
    code = code_of(err)
    status = status_pb2.Status(code=code.value[0], message=err.message, details=details)
    result: grpc.Status = rpc_status.to_status(status)
    return result


def internal_error() -> CommsgwError:
    return CommsgwError("internal error in the gateway", reason="INTERNAL")


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: CommsgwError) -> None:
    """End the call with the status `err` stands for (raises grpc.aio.AbortError)."""
    status = to_status(err)
    trailing = list(status.trailing_metadata)
    request_id = err.metadata.get("graph_request_id")
    if request_id:
        trailing.append((GRAPH_REQUEST_ID_KEY, request_id))
    await context.abort(status.code, status.details, trailing_metadata=tuple(trailing))


__all__ = [
    "BY_HTTP_STATUS",
    "BY_KIND",
    "CLIENT_REQUEST_ID_KEY",
    "ERROR_DOMAIN",
    "GRAPH_REQUEST_ID_KEY",
    "abort",
    "code_for_http",
    "code_of",
    "internal_error",
    "to_status",
]
