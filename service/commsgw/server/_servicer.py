"""The gRPC servicer: translates between graphcomms.v1 messages and the domain, nothing more.

Errors are raised as CommsgwError and become statuses in `commsgw.server._status`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc

from commsgw._config import Settings
from commsgw.eventlog._base import EventLog, WatchFilter, decode_token, encode_token
from commsgw.eventlog._hub import Hub
from commsgw.graph import CancelResult, GraphClient, validate_cancel
from commsgw.server import _context
from commsgw.server._status import CLIENT_REQUEST_ID_KEY, GRAPH_REQUEST_ID_KEY
from commsgw.server._wire import encode_watch_response
from graphcomms.v1 import calls_pb2

_STATUS = {
    "notstarted": calls_pb2.OPERATION_STATUS_NOT_STARTED,
    "running": calls_pb2.OPERATION_STATUS_RUNNING,
    "completed": calls_pb2.OPERATION_STATUS_COMPLETED,
    "failed": calls_pb2.OPERATION_STATUS_FAILED,
}

Context = grpc.aio.ServicerContext[Any, Any]


def _metadata(context: Context, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else None
    return None


def cancel_response(result: CancelResult) -> calls_pb2.CancelMediaProcessingResponse:
    op = result.operation
    return calls_pb2.CancelMediaProcessingResponse(
        operation=calls_pb2.Operation(
            id=op.id,
            type=calls_pb2.OPERATION_TYPE_CANCEL_MEDIA_PROCESSING,
            status=_STATUS.get(op.status.lower(), calls_pb2.OPERATION_STATUS_UNSPECIFIED),
            client_context=op.client_context,
            odata_type=op.odata_type,
            result_info=calls_pb2.ResultInfo(
                code=op.result_code, subcode=op.result_subcode, message=op.result_message
            )
            if (op.result_code or op.result_subcode or op.result_message)
            else None,
        ),
        location=result.location,
        graph_request_id=result.request_id,
        client_request_id=result.client_request_id,
    )


class CallsServicer:
    """graphcomms.v1.CallsService."""

    def __init__(self, settings: Settings, graph: GraphClient, hub: Hub, log: EventLog) -> None:
        self._settings = settings
        self._graph = graph
        self._hub = hub
        self._log = log

    async def CancelMediaProcessing(
        self, request: calls_pb2.CancelMediaProcessingRequest, context: Context
    ) -> calls_pb2.CancelMediaProcessingResponse:
        cmd = validate_cancel(
            self._settings,
            call_id=request.call_id,
            client_context=request.client_context,
            tenant_id=request.tenant_id,
            client_request_id=_metadata(context, CLIENT_REQUEST_ID_KEY),
        )
        rpc = _context.current()
        rpc.identity.require_tenant(cmd.tenant_id)
        rpc.client_request_id = cmd.client_request_id
        result = await self._graph.cancel_media_processing(cmd, timeout=context.time_remaining())
        rpc.graph_request_id = result.request_id
        context.set_trailing_metadata(
            (
                (GRAPH_REQUEST_ID_KEY, result.request_id),
                (CLIENT_REQUEST_ID_KEY, result.client_request_id),
            )
        )
        return cancel_response(result)

    async def WatchOperations(
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
        async for item in self._hub.watch(
            flt,
            resume=resume,
            snapshot=request.include_snapshot and resume is None,
            bookmark_interval=self._settings.bookmark_interval_s,
        ):
            token = encode_token(self._log.log_id, item.position)
            yield encode_watch_response(token, item, recordings=recordings)
