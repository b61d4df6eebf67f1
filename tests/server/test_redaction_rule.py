"""The redaction rule: a caller's view is a copy whenever something is left out, and the message
it came from (shared by every reader of the log) is never changed."""

from __future__ import annotations

from commsgw.server._redaction import operation_for, response_for
from graphcomms.v1 import calls_pb2


def stored() -> calls_pb2.Operation:
    return calls_pb2.Operation(
        id="op-1",
        status=calls_pb2.OPERATION_STATUS_COMPLETED,
        recording_location="https://media.example/rec.wav",
        recording_access_token="rec-secret",
    )


def test_a_redacted_view_is_a_copy_and_the_original_keeps_its_token() -> None:
    op = stored()
    before = op.SerializeToString()
    view = operation_for(op, reads_recordings=False)
    assert view is not op
    assert view.recording_access_token == ""
    assert view.recording_location == op.recording_location and view.id == op.id
    assert op.SerializeToString() == before


def test_nothing_to_hide_hands_on_the_same_message() -> None:
    op = stored()
    assert operation_for(op, reads_recordings=True) is op
    plain = calls_pb2.Operation(id="op-2")
    assert operation_for(plain, reads_recordings=False) is plain


def test_a_response_is_copied_before_its_operation_is_redacted() -> None:
    response = calls_pb2.WaitOperationResponse(operation=stored())
    before = response.SerializeToString()
    view = response_for(response, reads_recordings=False)
    assert view is not response
    assert view.operation.recording_access_token == ""
    assert response.SerializeToString() == before
    assert response_for(response, reads_recordings=True) is response


def test_a_response_without_an_operation_is_passed_on() -> None:
    response = calls_pb2.GetOperationRequest(call_id="c", operation_id="o")
    assert response_for(response, reads_recordings=False) is response
