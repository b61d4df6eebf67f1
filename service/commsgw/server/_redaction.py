"""What a caller may see of an operation: the one place where anything is left out of it.

Callers without recordings.read get operations without their recording_access_token. The rule
that keeps one caller's view from changing another's: redaction never changes the message it is
given. The log, its indexes and the hub hand the same stored objects to every reader, so a
redacted view is always a copy, made only when something is left out; what needs no redaction
is passed on as it is (the response constructors and the status details copy it anyway).
"""

from __future__ import annotations

from typing import TypeVar

from graphcomms.v1 import calls_pb2

M = TypeVar("M", bound=calls_pb2.Operation)
R = TypeVar("R")


def _hidden_from(op: calls_pb2.Operation, reads_recordings: bool) -> bool:
    return bool(op.recording_access_token) and not reads_recordings


def operation_for(op: M, reads_recordings: bool) -> M:
    """`op` as a caller sees it: `op` itself, or a copy of it without the recording token."""
    if not _hidden_from(op, reads_recordings):
        return op
    view = type(op)()
    view.CopyFrom(op)
    view.recording_access_token = ""
    return view


def response_for(response: R, reads_recordings: bool) -> R:
    """A response carrying an `operation`, as a caller sees it: `response` itself, or a copy
    whose operation has no recording token."""
    op = getattr(response, "operation", None)
    if not isinstance(op, calls_pb2.Operation) or not _hidden_from(op, reads_recordings):
        return response
    view = type(response)()
    view.CopyFrom(response)  # type: ignore[attr-defined]
    view.operation.recording_access_token = ""  # type: ignore[attr-defined]
    return view
