"""Everything the gateway asks of Graph: every action, by the RPC that serves it, and the
reads it makes on its own account."""

from __future__ import annotations

from commsgw._graphjson import read_operation
from commsgw.graph import _lifecycle, _media, _participants
from commsgw.graph._action import Action, Answer, GraphRequest, Read, Retry, calls_path
from graphcomms.v1 import calls_pb2

ACTIONS: dict[str, Action] = {
    a.rpc: a for a in (*_lifecycle.ACTIONS, *_media.ACTIONS, *_participants.ACTIONS)
}


def _operation(tenant_id: str, call_id: str, operation_id: str) -> GraphRequest:
    return GraphRequest("GET", calls_path(call_id, f"/operations/{operation_id}"), tenant_id)


def _operation_result(answer: Answer) -> calls_pb2.Operation:
    return read_operation(answer.json("a commsOperation"))


OPERATION: Read[calls_pb2.Operation] = Read(Retry.IDEMPOTENT, _operation, _operation_result)
"""A commsOperation's state (GET .../operations/{id}): GetOperation and WaitOperation read it
when the event log has no notification of the operation. Build: (tenant, call id, operation
id), checked by the caller."""
