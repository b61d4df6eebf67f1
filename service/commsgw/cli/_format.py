"""How the command prints what the gateway streams: one line per watch response."""

from __future__ import annotations

from graphcomms.v1 import calls_pb2


def format_event(resp: calls_pb2.WatchOperationsResponse) -> str:
    if resp.WhichOneof("kind") == "bookmark":
        return f"bookmark {calls_pb2.BookmarkKind.Name(resp.bookmark.kind)}"
    ev = resp.event
    kind = ev.WhichOneof("kind")
    head = f"call {ev.call_id} {calls_pb2.ChangeType.Name(ev.change_type)}"
    if kind == "operation_update":
        op = ev.operation_update.operation
        ri = op.result_info
        line = (
            f"{head} operation {op.id} {calls_pb2.OperationType.Name(op.type)} "
            f"{calls_pb2.OperationStatus.Name(op.status)}"
        )
        if op.HasField("result_info"):
            line += f" result={ri.code}/{ri.subcode}"
        if op.completion_reason:
            line += f" reason={op.completion_reason}"
        if op.client_context:
            line += f" client_context={op.client_context!r}"
        return line
    if kind == "call_update":
        cu = ev.call_update
        return f"{head} state {calls_pb2.CallState.Name(cu.state)}"
    return f"{head} other {ev.other.odata_type}"
