"""The state of an operation: the event log's index first, Graph's GET second; and waiting for
an operation to end without a race.

A wait registers with the hub before it looks at the log's index: a terminal notification
stored before the registration is in the index, one stored after is handed to the
subscription. Every replica reading a shared log sees every notification, so a wait works on
any of them, whichever received the callback.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from commsgw._errors import GraphError, OperationNotDone
from commsgw.eventlog import EventLog, Hub, WatchFilter
from commsgw.graph import OPERATION, GraphClient
from graphcomms.v1 import calls_pb2

TERMINAL = frozenset({calls_pb2.OPERATION_STATUS_COMPLETED, calls_pb2.OPERATION_STATUS_FAILED})
# A wait ends this much before the caller's deadline, so that its DEADLINE_EXCEEDED (with the
# last known state) reaches the caller before gRPC's own.
DEADLINE_MARGIN_S = 0.05


def _own(op: calls_pb2.Operation) -> calls_pb2.Operation:
    """A copy of an operation taken from the log or the hub, whose objects every reader shares:
    what this module hands out is its caller's own."""
    copy = calls_pb2.Operation()
    copy.CopyFrom(op)
    return copy


@dataclass(frozen=True, slots=True)
class Known:
    """An operation's latest known state (the caller's own copy) and where it was found."""

    operation: calls_pb2.Operation
    source: calls_pb2.OperationSource.ValueType
    graph_request_id: str = ""


class Operations:
    def __init__(self, graph: GraphClient, hub: Hub, log: EventLog) -> None:
        self._graph = graph
        self._hub = hub
        self._log = log

    async def _from_log(self, key: tuple[str, str, str]) -> calls_pb2.Operation | None:
        entry = await self._log.latest_operation(key)
        return _own(entry.event.operation_update.operation) if entry is not None else None

    async def _from_graph(
        self, key: tuple[str, str, str], *, crid: str, timeout: float | None
    ) -> Known:
        req = OPERATION.build(*key)
        answer = await self._graph.send(req, retry=OPERATION.retry, crid=crid, timeout=timeout)
        operation = OPERATION.result(answer)
        return Known(operation, calls_pb2.OPERATION_SOURCE_GRAPH, answer.request_id)

    async def get(self, key: tuple[str, str, str], *, crid: str, timeout: float | None) -> Known:
        """The latest known state: the log's, else Graph's (its errors are raised)."""
        found = await self._from_log(key)
        if found is not None:
            return Known(found, calls_pb2.OPERATION_SOURCE_EVENT_LOG)
        return await self._from_graph(key, crid=crid, timeout=timeout)

    async def wait(
        self,
        key: tuple[str, str, str],
        *,
        crid: str,
        wait_s: float,
        bookmark_interval: float,
    ) -> calls_pb2.Operation:
        """The operation once terminal; OperationNotDone (with the last known state) when
        `wait_s` passes first."""
        _, call, op_id = key
        flt = WatchFilter.build(
            call_ids=[call],
            tenant_ids=[key[0]],
            op_types=(),
            statuses=(),
            client_context="",
            include_calls=False,
            include_other=False,
        )
        last: calls_pb2.Operation | None = None
        items = self._hub.watch(
            flt, resume=None, snapshot=False, bookmark_interval=bookmark_interval
        )
        try:
            async with asyncio.timeout(wait_s):
                await anext(items)  # the START bookmark: registered with the hub
                last = await self._from_log(key)
                if last is None:
                    # No notification yet: Graph's own answer may already be terminal (it then
                    # sends none). Graph not knowing it is no reason to stop waiting.
                    with contextlib.suppress(GraphError):
                        last = (await self._from_graph(key, crid=crid, timeout=wait_s)).operation
                if last is not None and last.status in TERMINAL:
                    return last
                async for item in items:
                    if item.entry is None or item.entry.kind != "operation_update":
                        continue
                    shared = item.entry.event.operation_update.operation
                    if shared.id != op_id:
                        continue
                    operation = last = _own(shared)
                    if operation.status in TERMINAL:
                        return operation
        except TimeoutError:
            pass
        finally:
            await items.aclose()  # type: ignore[attr-defined]
        raise OperationNotDone(
            f"operation {op_id} is not done after {wait_s:.3g} s"
            + (
                ""
                if last is None
                else f" (last known: {calls_pb2.OperationStatus.Name(last.status)})"
            ),
            operation=last,
        )
