"""The one place where errors become gRPC statuses.

A server interceptor wraps every handler: a CommsgwError becomes its status code with a
google.rpc.Status (ErrorInfo, RetryInfo) in the trailers; anything else is logged and answered
INTERNAL, so no failure reaches a caller as UNKNOWN.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
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


def _unary(
    inner: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]],
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await inner(request, context)
        except CommsgwError as err:
            await abort(context, err)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("unexpected error in a unary RPC")
            await abort(context, internal_error())

    return handler


def _stream(
    inner: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]],
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            async for item in inner(request, context):
                yield item
        except CommsgwError as err:
            await abort(context, err)
        except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit):
            raise
        except Exception:
            log.exception("unexpected error in a streaming RPC")
            await abort(context, internal_error())

    return handler


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Translates errors raised by handlers into statuses (see the module docstring)."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _stream(handler.unary_stream),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


__all__ = [
    "CLIENT_REQUEST_ID_KEY",
    "ERROR_DOMAIN",
    "GRAPH_REQUEST_ID_KEY",
    "ErrorInterceptor",
    "abort",
    "to_status",
]
