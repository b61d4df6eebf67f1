"""How the command prints what the gateway answers or streams, for people: one short line per
operation, call, participant or watch response (`--json` prints the messages instead)."""

from __future__ import annotations

from google.protobuf.message import Message

from graphcomms.v1 import call_types_pb2, calls_pb2

_SLOT_LABELS = {"application": "app", "application_instance": "app-instance"}


def format_identity(identity: call_types_pb2.IdentitySet) -> str:
    """`user <id> 'name'`, `phone +1425...`, ... for every slot that is set."""
    parts = []
    for field, one in identity.ListFields():
        name = f" {one.display_name!r}" if one.display_name else ""
        parts.append(f"{_SLOT_LABELS.get(field.name, field.name)} {one.id}{name}")
    return ", ".join(parts) or "unknown"


def _result(info: calls_pb2.ResultInfo) -> str:
    return f" result={info.code}/{info.subcode}"


def format_operation(op: calls_pb2.Operation) -> str:
    """An operation on one line (never its recording access token)."""
    line = (
        f"operation {op.id} {calls_pb2.OperationType.Name(op.type)} "
        f"{calls_pb2.OperationStatus.Name(op.status)}"
    )
    if op.HasField("result_info"):
        line += _result(op.result_info)
    if op.completion_reason:
        line += f" reason={op.completion_reason}"
    if op.client_context:
        line += f" client_context={op.client_context!r}"
    if op.recording_location:
        line += f" recording={op.recording_location}"
    return line


def format_call_update(cu: calls_pb2.CallUpdate) -> str:
    line = f"state {calls_pb2.CallState.Name(cu.state)}"
    if cu.HasField("source"):
        line += f" from {format_identity(cu.source.identity)}"
    if cu.HasField("tone_info"):
        tone = call_types_pb2.Tone.Name(cu.tone_info.tone)
        line += f" tone {tone} sequence_id={cu.tone_info.sequence_id}"
    if cu.HasField("answer_deadline"):
        line += f" answer_by={cu.answer_deadline.ToJsonString()}"
    if cu.HasField("result_info"):
        line += _result(cu.result_info)
    if cu.origin == calls_pb2.CALL_UPDATE_ORIGIN_GATEWAY:
        reason = calls_pb2.ObservedEndReason.Name(cu.observed_end_reason)
        line += f" observed_by_gateway={reason.removeprefix('OBSERVED_END_REASON_')}"
    if cu.stale:
        line += " stale"
    if cu.confirms_observed_end:
        line += " confirms_observed_end"
    return line


def format_event(resp: calls_pb2.WatchOperationsResponse) -> str:
    if resp.WhichOneof("kind") == "bookmark":
        return f"bookmark {calls_pb2.BookmarkKind.Name(resp.bookmark.kind)}"
    ev = resp.event
    kind = ev.WhichOneof("kind")
    head = f"call {ev.call_id} {calls_pb2.ChangeType.Name(ev.change_type)}"
    if kind == "operation_update":
        return f"{head} {format_operation(ev.operation_update.operation)}"
    if kind == "call_update":
        return f"{head} {format_call_update(ev.call_update)}"
    return f"{head} other {ev.other.odata_type}"


def format_call(call: calls_pb2.Call) -> str:
    line = (
        f"call {call.id} {calls_pb2.CallState.Name(call.state)} "
        f"{call_types_pb2.CallDirection.Name(call.direction)}"
    )
    if call.HasField("source"):
        line += f" from {format_identity(call.source.identity)}"
    if call.targets:
        line += " to " + "; ".join(format_identity(t.identity) for t in call.targets)
    if call.HasField("result_info"):
        line += _result(call.result_info)
    return line


def format_participant(p: call_types_pb2.Participant) -> str:
    flags = (" muted" if p.is_muted else "") + (" in-lobby" if p.is_in_lobby else "")
    return f"participant {p.id} {format_identity(p.info.identity)}{flags}"


def describe(message: Message) -> str:
    """What a unary RPC answered (or the operation a `--wait` ended with), in a few lines."""
    if isinstance(message, calls_pb2.Operation):
        return format_operation(message)
    fields = message.DESCRIPTOR.fields_by_name
    lines = []
    if "call" in fields:
        lines.append(format_call(getattr(message, "call")))  # noqa: B009
    if "operation" in fields:
        lines.append(format_operation(getattr(message, "operation")))  # noqa: B009
    if isinstance(message, calls_pb2.GetOperationResponse):
        lines.append(f"source {calls_pb2.OperationSource.Name(message.source)}")
    if isinstance(message, calls_pb2.ListParticipantsResponse):
        lines += [format_participant(p) for p in message.participants] or ["no participants"]
    location = getattr(message, "location", "")
    if location:
        lines.append(f"location {location}")
    request_id = getattr(message, "graph_request_id", "")
    if not lines:
        lines.append("done")
    if request_id:
        lines.append(f"graph request-id {request_id}")
    return "\n".join(lines)
