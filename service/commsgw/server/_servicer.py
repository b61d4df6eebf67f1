"""The gRPC servicer: translates between graphcomms.v1 messages and the domain, nothing more.

Every Graph action (`commsgw.graph.ACTIONS`) is served the same way: its declaration checks the
request and writes Graph's request, the Graph client sends it as its retry class allows, and
the declaration turns Graph's answer into the response. Errors are raised as CommsgwError and
become statuses in `commsgw.server._status`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from opentelemetry.trace import set_span_in_context

from commsgw._errors import FailedPrecondition, GraphError, InvalidArgument, OperationNotDone
from commsgw._tracing import Link, SpanKind, Tracing, span_context_of
from commsgw.eventlog import EventLog, Hub, LogEntry, WatchFilter, decode_token, encode_token
from commsgw.graph import ACTIONS, Action, GraphClient, RequestConfig
from commsgw.graph import validate as v
from commsgw.keepalive import Reconciler
from commsgw.server import _context
from commsgw.server._operations import DEADLINE_MARGIN_S, Operations
from commsgw.server._redaction import operation_for, response_for
from commsgw.server._status import CLIENT_REQUEST_ID_KEY, GRAPH_REQUEST_ID_KEY
from commsgw.server._wire import encode_watch_batch, encode_watch_response
from graphcomms.v1 import calls_pb2

Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Context], Any]
R = TypeVar("R")
MAX_WAIT_S = 3600.0
MAX_BATCH = 1000


def _metadata(context: Context, key: str) -> str | None:
    for k, val in context.invocation_metadata() or ():
        if k == key:
            return val if isinstance(val, str) else None
    return None


def _redact(response: R, rpc: _context.RpcContext) -> R:
    return response_for(response, rpc.identity.reads_recordings)


@dataclasses.dataclass(frozen=True, slots=True)
class ServicerConfig:
    """What the RPCs need of the gateway's configuration."""

    # How each action's Graph request is written (default tenant, tenants, callbackUri).
    requests: RequestConfig
    # The national cloud (some actions exist in some clouds only).
    cloud: str
    # The longest WaitOperation without a deadline, and the idle watches' bookmark period.
    max_wait_s: float
    bookmark_interval_s: float


class CallsServicer:
    """graphcomms.v1.CallsService."""

    def __init__(
        self,
        config: ServicerConfig,
        graph: GraphClient,
        hub: Hub,
        log: EventLog,
        tracing: Tracing | None = None,
        *,
        reconciler: Reconciler | None = None,
    ) -> None:
        self._config = config
        self._reconciler = reconciler
        self._tracing = tracing or Tracing()
        self._graph = graph
        self._hub = hub
        self._log = log
        self._operations = Operations(graph, hub, log)

    def handler(self, rpc: str) -> Handler | None:
        """The behaviour of RPC `rpc`, None when it is not served."""
        action = ACTIONS.get(rpc)
        if action is not None:
            return functools.partial(self._run, action)
        own: Handler | None = getattr(self, f"_rpc_{rpc}", None)
        return own

    def _begin(self, context: Context, tenant: str) -> tuple[_context.RpcContext, str]:
        rpc = _context.current()
        rpc.identity.require_tenant(tenant)
        crid = v.client_request_id(_metadata(context, CLIENT_REQUEST_ID_KEY))
        rpc.client_request_id = crid
        return rpc, crid

    def _done(self, context: Context, rpc: _context.RpcContext, graph_request_id: str) -> None:
        rpc.graph_request_id = graph_request_id
        context.set_trailing_metadata(
            (
                (GRAPH_REQUEST_ID_KEY, graph_request_id),
                (CLIENT_REQUEST_ID_KEY, rpc.client_request_id),
            )
        )

    async def _run(self, action: Action, request: Any, context: Context) -> Any:
        req = action.build(request, self._config.requests)
        if action.clouds and self._config.cloud not in action.clouds:
            raise FailedPrecondition(
                f"Graph does not offer {action.rpc} in the {self._config.cloud} cloud",
                reason="NOT_IN_THIS_CLOUD",
            )
        rpc, crid = self._begin(context, req.tenant_id)
        try:
            answer = await self._graph.send(
                req, retry=action.retry, crid=crid, timeout=context.time_remaining()
            )
        except GraphError as err:
            if err.http_status == 404 and self._reconciler is not None:  # a call gone silently?
                detail = f"{action.rpc} answered 404, graph request-id {err.request_id or '-'}"
                await self._reconciler.not_found(req.tenant_id, req.path, detail)
            raise
        self._done(context, rpc, answer.request_id)
        return _redact(action.result(answer), rpc)

    def _operation_key(self, request: Any) -> tuple[str, str, str]:
        return (
            v.tenant(self._config.requests, request.tenant_id),
            v.call_id(request.call_id),
            v.operation_id(request.operation_id),
        )

    async def _rpc_GetOperation(
        self, request: calls_pb2.GetOperationRequest, context: Context
    ) -> calls_pb2.GetOperationResponse:
        key = self._operation_key(request)
        rpc, crid = self._begin(context, key[0])
        known = await self._operations.get(key, crid=crid, timeout=context.time_remaining())
        self._done(context, rpc, known.graph_request_id)
        return _redact(
            calls_pb2.GetOperationResponse(
                operation=known.operation,
                source=known.source,
                graph_request_id=known.graph_request_id,
                client_request_id=crid,
            ),
            rpc,
        )

    async def _rpc_WaitOperation(
        self, request: calls_pb2.WaitOperationRequest, context: Context
    ) -> calls_pb2.WaitOperationResponse:
        key = self._operation_key(request)
        wait_s = self._config.max_wait_s
        if request.HasField("timeout"):
            asked = request.timeout.ToTimedelta().total_seconds()
            if not 0 < asked <= MAX_WAIT_S:
                raise InvalidArgument(
                    f"timeout must be more than 0 and at most {MAX_WAIT_S:.0f} s",
                    reason="INVALID_TIMEOUT",
                )
            wait_s = asked
        remaining = context.time_remaining()
        if remaining is not None:
            wait_s = min(wait_s, max(0.0, remaining - DEADLINE_MARGIN_S))
        rpc, crid = self._begin(context, key[0])
        context.set_trailing_metadata(((CLIENT_REQUEST_ID_KEY, crid),))
        try:
            operation = await self._operations.wait(
                key, crid=crid, wait_s=wait_s, bookmark_interval=self._config.bookmark_interval_s
            )
        except OperationNotDone as err:
            if isinstance(err.operation, calls_pb2.Operation):  # it goes out in the details
                err.operation = operation_for(err.operation, rpc.identity.reads_recordings)
            raise
        return _redact(calls_pb2.WaitOperationResponse(operation=operation), rpc)

    async def _rpc_WatchOperations(
        self, request: calls_pb2.WatchOperationsRequest, context: Context
    ) -> AsyncIterator[bytes]:
        identity = _context.current().identity
        flt = WatchFilter.build(
            call_ids=request.call_ids,
            tenant_ids=request.tenant_ids,
            op_types=request.operation_types,
            statuses=request.statuses,
            client_context=request.client_context,
            include_calls=request.include_call_updates,
            include_other=request.include_other,
        )
        tenants = identity.visible_tenants(flt.tenant_ids)
        if tenants != flt.tenant_ids:
            flt = dataclasses.replace(flt, tenant_ids=tenants)
        recordings = identity.reads_recordings
        log_id = self._log.log_id
        resume = decode_token(request.resume_token, log_id) if request.resume_token else None
        if request.max_events_per_response > MAX_BATCH:
            raise InvalidArgument(
                f"max_events_per_response must be at most {MAX_BATCH}",
                reason="INVALID_BATCH_SIZE",
            )
        traced = self._tracing.enabled
        rpc_span = _context.current().span
        async for item in self._hub.watch(
            flt,
            resume=resume,
            snapshot=request.include_snapshot and resume is None,
            bookmark_interval=self._config.bookmark_interval_s,
            max_batch=max(1, request.max_events_per_response),
        ):
            token = encode_token(log_id, item.position)
            if not item.batch:
                if traced and item.entry is not None:
                    self._delivered(rpc_span, item.entry)
                yield encode_watch_response(token, item, recordings=recordings)
                continue
            one = []
            for single in item.batch:
                if traced and single.entry is not None:
                    self._delivered(rpc_span, single.entry)
                one.append(
                    encode_watch_response(
                        encode_token(log_id, single.position), single, recordings=recordings
                    )
                )
            yield encode_watch_batch(token, one)

    def _delivered(self, parent: Any, entry: LogEntry) -> None:
        """A span for one event sent to one subscriber: a child of the watch's span, linked
        to the span of the webhook POST that brought the event (on whichever replica)."""
        origin = span_context_of(entry.traceparent) if entry.traceparent else None
        self._tracing.tracer.start_span(
            "deliver",
            context=set_span_in_context(parent) if parent is not None else None,
            kind=SpanKind.PRODUCER,
            links=[Link(origin)] if origin is not None else None,
            attributes={"commsgw.call_id": entry.call_id, "commsgw.event.kind": entry.kind},
        ).end()
