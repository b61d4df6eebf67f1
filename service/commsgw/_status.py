"""The one place where errors become gRPC statuses.

A CommsgwError becomes its status code with a google.rpc.Status (ErrorInfo, RetryInfo) in the
trailers; the interceptor (`commsgw._interceptor`) answers anything else INTERNAL through
`internal_error`, so no failure reaches a caller as UNKNOWN.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from commsgw._errors import CommsgwError, GraphError

log = logging.getLogger("commsgw.status")

ERROR_DOMAIN = "commsgw"
GRAPH_REQUEST_ID_KEY = "x-graph-request-id"
CLIENT_REQUEST_ID_KEY = "x-client-request-id"


def to_status(err: CommsgwError) -> grpc.Status:
    """The gRPC status (code, message, rich details) that `err` stands for."""
    details: list[any_pb2.Any] = []
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=ERROR_DOMAIN)
    for k, v in err.metadata.items():
        info.metadata[k] = v
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if isinstance(err, GraphError) and err.retry_after is not None:
        frac, whole = math.modf(err.retry_after)
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(whole), nanos=int(frac * 1e9))
        )
        packed = any_pb2.Any()
        packed.Pack(retry)
        details.append(packed)
    status = status_pb2.Status(code=err.code.value[0], message=err.message, details=details)
    result: grpc.Status = rpc_status.to_status(status)
    return result


def internal_error() -> CommsgwError:
    return CommsgwError("internal error in the gateway", reason="INTERNAL")


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: CommsgwError) -> None:
    status = to_status(err)
    trailing = list(status.trailing_metadata)
    request_id = err.metadata.get("graph_request_id")
    if request_id:
        trailing.append((GRAPH_REQUEST_ID_KEY, request_id))
    await context.abort(status.code, status.details, trailing_metadata=tuple(trailing))


__all__ = [
    "CLIENT_REQUEST_ID_KEY",
    "ERROR_DOMAIN",
    "GRAPH_REQUEST_ID_KEY",
    "abort",
    "internal_error",
    "to_status",
]
