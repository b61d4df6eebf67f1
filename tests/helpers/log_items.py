"""What the event logs store, made directly (as the notification parser would hand it over):
operation and call updates of one call, and the operation ids of stored entries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from commsgw.eventlog._base import LogEntry
from graphcomms.v1 import calls_pb2

TENANT = "11111111-1111-1111-1111-111111111111"
CALL = "22222222-2222-2222-2222-222222222222"


@dataclass(frozen=True)
class Item:
    event: calls_pb2.Event
    dedup_key: bytes
    operation_key: tuple[str, str, str] | None


def op_item(
    op_id: str,
    status: calls_pb2.OperationStatus.ValueType = calls_pb2.OPERATION_STATUS_RUNNING,
    *,
    dedup: str = "",
) -> Item:
    """An update of operation `op_id`; its dedup key is unique unless `dedup` names one."""
    event = calls_pb2.Event(
        tenant_id=TENANT,
        call_id=CALL,
        change_type=calls_pb2.CHANGE_TYPE_UPDATED,
        resource_url=f"/communications/calls/{CALL}/operations/{op_id}",
        operation_update=calls_pb2.OperationUpdate(
            operation=calls_pb2.Operation(
                id=op_id, type=calls_pb2.OPERATION_TYPE_RECORD, status=status
            )
        ),
    )
    key = (dedup or f"{op_id}/{status}/{uuid.uuid4().hex}").encode()
    return Item(event, key.ljust(16, b".")[:32], (TENANT, CALL, op_id))


def call_item() -> Item:
    event = calls_pb2.Event(
        tenant_id=TENANT,
        call_id=CALL,
        call_update=calls_pb2.CallUpdate(state=calls_pb2.CALL_STATE_ESTABLISHED),
    )
    return Item(event, uuid.uuid4().bytes, None)


def op_ids(entries: Sequence[LogEntry]) -> list[str]:
    return [e.event.operation_update.operation.id for e in entries]
