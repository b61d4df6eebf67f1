"""The gateway's guard around every CallsService handler. Each handler is wrapped once, when
the server is built (`GatewayInterceptor.wrap`), not per call: a grpc.aio server interceptor
would run a coroutine and build a new handler for every RPC. Around each call it

- refuses new calls while the gateway drains (UNAVAILABLE),
- authenticates the caller and checks the method's permission (before anything is sent to
  Graph or streamed) and makes the identity available to the servicer,
- enforces the stream limits (in total and per caller),
- translates errors into statuses (via `commsgw.server._status`, the one place that maps them),
- counts and times the call and writes one structured log line for it (DEBUG when it
  succeeded, INFO otherwise).

Health and reflection are not wrapped: they are public and cheap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry.context import attach, detach
from opentelemetry.trace import set_span_in_context

from commsgw import _permissions
from commsgw._errors import CommsgwError, InvalidArgument, ShuttingDown
from commsgw._metrics import Metrics
from commsgw._tracing import Span, SpanKind, Status, StatusCode, Tracing, context_from
from commsgw.graph import ACTIONS
from commsgw.server import _context
from commsgw.server._callers import TRUSTED, Callers, Identity
from commsgw.server._context import RpcContext
from commsgw.server._limits import StreamLimits
from commsgw.server._status import abort, code_of, internal_error
from commsgw.server._wire import MalformedRequest

log = logging.getLogger("commsgw.rpc")

SERVICE = "/graphcomms.v1.CallsService/"
# The permission each RPC needs: a Graph action's is in its declaration; the RPCs that read
# the event log need operations.watch.
PERMISSION_BY_METHOD = {
    **{SERVICE + rpc: action.permission for rpc, action in ACTIONS.items()},
    **{
        SERVICE + rpc: _permissions.WATCH
        for rpc in ("WatchOperations", "GetOperation", "WaitOperation")
    },
}

Context = grpc.aio.ServicerContext[Any, Any]


def _check_request(request: Any) -> None:
    if isinstance(request, MalformedRequest):
        raise InvalidArgument(request.problem, reason="MALFORMED_REQUEST")


class GatewayInterceptor:
    def __init__(
        self,
        *,
        callers: Callers | None,
        metrics: Metrics,
        limits: StreamLimits,
        draining: Callable[[], bool],
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing or Tracing()
        self._callers = callers
        self._metrics = metrics
        self._limits = limits
        self._draining = draining
        self._children: dict[tuple[str, grpc.StatusCode], tuple[Any, Any]] = {}

    def _start_span(self, method: str, context: Context) -> Span:
        """The RPC's span, a child of the caller's W3C trace context when it sent one."""
        return self._tracing.tracer.start_span(
            method.lstrip("/"),
            context=context_from(context.invocation_metadata() or ()),
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": SERVICE.strip("/"),
                "rpc.method": method.rsplit("/", 1)[-1],
            },
        )

    @staticmethod
    def _end_span(span: Span, code: grpc.StatusCode, who: str, info: RpcContext) -> None:
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        span.set_attribute("commsgw.caller", who)
        if info.client_request_id:
            span.set_attribute("commsgw.client_request_id", info.client_request_id)
        if info.graph_request_id:
            span.set_attribute("commsgw.graph_request_id", info.graph_request_id)
        if code is not grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()

    def _admit(self, context: Context, permission: str) -> Identity:
        if self._draining():
            raise ShuttingDown("the gateway is shutting down; retry on another replica")
        if self._callers is None:
            return TRUSTED
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        auth_context = context.auth_context() or {}
        identity = self._callers.authenticate(metadata, auth_context)
        identity.require(permission)
        return identity

    def _done(
        self,
        method: str,
        started: float,
        code: grpc.StatusCode,
        who: str,
        info: RpcContext,
    ) -> None:
        elapsed = time.perf_counter() - started
        name = method.rsplit("/", 1)[-1]
        children = self._children.get((name, code))
        if children is None:  # `labels()` costs more than the update: looked up once
            children = self._children[(name, code)] = (
                self._metrics.rpcs.labels(name, code.name),
                self._metrics.rpc_latency.labels(name),
            )
        children[0].inc()
        children[1].observe(elapsed)
        # A call that succeeded is a DEBUG line (its count and duration are in the metrics);
        # every other outcome stays INFO. The check first: building the fields costs too.
        level = logging.DEBUG if code is grpc.StatusCode.OK else logging.INFO
        if not log.isEnabledFor(level):
            return
        log.log(
            level,
            "rpc %s %s",
            name,
            code.name,
            extra={
                "rpc": name,
                "code": code.name,
                "duration_ms": round(elapsed * 1000, 2),
                "caller": who,
                "client_request_id": info.client_request_id,
                "graph_request_id": info.graph_request_id,
            },
        )

    async def _fail(self, context: Context, err: BaseException, info: RpcContext) -> None:
        """Abort the call with the status `err` stands for (raises AbortError)."""
        if not isinstance(err, CommsgwError):
            log.error("unexpected error in an RPC", exc_info=err)
            err = internal_error()
        info.graph_request_id = info.graph_request_id or err.metadata.get("graph_request_id", "")
        info.client_request_id = info.client_request_id or err.metadata.get("client_request_id", "")
        await abort(context, err)

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """`handler` (of the full method name `method`) guarded; a method that needs no
        permission (none of CallsService's) is returned as it is."""
        permission = PERMISSION_BY_METHOD.get(method)
        if permission is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, permission, handler.unary_unary),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, permission, handler.unary_stream),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        raise TypeError(f"{method}: only unary and server-streaming handlers are guarded")

    def _unary(
        self, method: str, permission: str, inner: Callable[[Any, Context], Awaitable[Any]]
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        async def handler(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            info = _context.begin()
            code = grpc.StatusCode.OK
            who = "-"
            span = token = None
            if self._tracing.enabled:
                span = info.span = self._start_span(method, context)
                token = attach(set_span_in_context(span))  # Graph attempts are its children
            try:
                identity = self._admit(context, permission)
                who = identity.name
                info.identity = identity
                _check_request(request)
                return await inner(request, context)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as err:
                code = code_of(err)
                await self._fail(context, err, info)
            finally:
                self._done(method, started, code, who, info)
                if span is not None and token is not None:
                    self._end_span(span, code, who, info)
                    detach(token)

        return handler

    def _stream(
        self, method: str, permission: str, inner: Callable[[Any, Context], AsyncIterator[Any]]
    ) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def handler(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            info = _context.begin()
            code = grpc.StatusCode.OK
            who = "-"
            identity: Identity | None = None
            # A stream's span is not made current (the generator may be closed elsewhere):
            # what it delivers names it as parent itself (RpcContext.span).
            span = info.span = self._start_span(method, context) if self._tracing.enabled else None
            try:
                admitted = self._admit(context, permission)
                who = admitted.name
                _check_request(request)
                self._limits.acquire(admitted)
                identity = admitted
                info.identity = identity
                async for item in inner(request, context):
                    yield item
            except (asyncio.CancelledError, GeneratorExit):
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as err:
                code = code_of(err)
                if isinstance(err, CommsgwError):
                    self._metrics.cut.labels(err.reason).inc()
                await self._fail(context, err, info)
            finally:
                if identity is not None:
                    self._limits.release(identity)
                self._done(method, started, code, who, info)
                if span is not None:
                    self._end_span(span, code, who, info)

        return handler


__all__ = ["GatewayInterceptor"]
