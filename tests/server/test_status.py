"""The error tables: commsgw.server._status (an error -> its gRPC status and rich details) and
the webhook's (commsgw.notifications._webhook: a refused POST -> its HTTP status)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import status_pb2

from commsgw._errors import (
    CallerError,
    CommsgwError,
    ConfigError,
    DeadlineExceeded,
    EventLogUnavailable,
    GraphBadResponse,
    GraphError,
    GraphTimeout,
    GraphUnreachable,
    InvalidArgument,
    NotificationAuthError,
    NotificationError,
    NotificationFormatError,
    NotificationNotJson,
    NotificationRateLimited,
    NotificationTooLarge,
    PermissionDenied,
    ResumeTokenExpired,
    ShuttingDown,
    SubscriberTooSlow,
    TokenError,
    TooManyStreams,
    Unauthenticated,
    Unavailable,
    WatchError,
)
from commsgw.notifications._webhook import http_status_of
from commsgw.server._status import code_for_http, code_of, internal_error, to_status
from helpers.status import unpack_details

C = grpc.StatusCode


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (InvalidArgument("x"), C.INVALID_ARGUMENT),
        (Unauthenticated("x"), C.UNAUTHENTICATED),
        (PermissionDenied("x"), C.PERMISSION_DENIED),
        (TooManyStreams("x"), C.RESOURCE_EXHAUSTED),
        (GraphUnreachable("x"), C.UNAVAILABLE),
        (GraphTimeout("x"), C.DEADLINE_EXCEEDED),
        (GraphBadResponse("x", http_status=200), C.INTERNAL),
        (DeadlineExceeded("x"), C.DEADLINE_EXCEEDED),
        (TokenError("x"), C.UNAUTHENTICATED),
        (ResumeTokenExpired("x"), C.OUT_OF_RANGE),
        (SubscriberTooSlow("x"), C.RESOURCE_EXHAUSTED),
        (Unavailable("x"), C.UNAVAILABLE),
        (EventLogUnavailable("x"), C.UNAVAILABLE),
        (ShuttingDown("x"), C.UNAVAILABLE),
        (ConfigError("x"), C.FAILED_PRECONDITION),
        (NotificationError("x"), C.INVALID_ARGUMENT),
        (NotificationRateLimited("x", retry_after=1), C.INVALID_ARGUMENT),
        (CommsgwError("x"), C.INTERNAL),
        (CallerError("x"), C.INTERNAL),
        (WatchError("x"), C.INTERNAL),
        (internal_error(), C.INTERNAL),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.name,
)
def test_the_kind_of_error_chooses_the_code(err: CommsgwError, code: grpc.StatusCode) -> None:
    assert code_of(err) == code


@pytest.mark.parametrize("err", [ValueError("x"), KeyError("k"), RuntimeError(), Exception()])
def test_anything_not_raised_on_purpose_is_internal(err: BaseException) -> None:
    assert code_of(err) == C.INTERNAL


def test_a_new_subclass_inherits_its_parents_code() -> None:
    class PerTenantStreams(TooManyStreams):
        pass

    class Stalled(GraphTimeout):
        pass

    assert code_of(PerTenantStreams("x")) == C.RESOURCE_EXHAUSTED
    assert code_of(Stalled("x", http_status=503)) == C.DEADLINE_EXCEEDED


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, C.INVALID_ARGUMENT),
        (401, C.UNAUTHENTICATED),
        (403, C.PERMISSION_DENIED),
        (404, C.NOT_FOUND),
        (408, C.DEADLINE_EXCEEDED),
        (409, C.ABORTED),
        (412, C.FAILED_PRECONDITION),
        (429, C.RESOURCE_EXHAUSTED),
        (500, C.INTERNAL),
        (501, C.UNIMPLEMENTED),
        (502, C.UNAVAILABLE),
        (503, C.UNAVAILABLE),
        (504, C.UNAVAILABLE),
        (405, C.FAILED_PRECONDITION),  # other 4xx
        (410, C.FAILED_PRECONDITION),
        (422, C.FAILED_PRECONDITION),
        (499, C.FAILED_PRECONDITION),
        (505, C.INTERNAL),  # other statuses
        (599, C.INTERNAL),
        (302, C.INTERNAL),
        (200, C.INTERNAL),
    ],
)
def test_graphs_http_status_chooses_the_code_of_a_graph_answer(
    status: int, code: grpc.StatusCode
) -> None:
    assert code_for_http(status) == code
    assert code_of(GraphError("x", http_status=status)) == code


def test_a_graph_error_without_an_answer_is_internal() -> None:
    assert code_of(GraphError("x")) == C.INTERNAL


def rich(status: grpc.Status) -> status_pb2.Status:
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(details, bytes)
    return status_pb2.Status.FromString(details)


def test_to_status_carries_error_info() -> None:
    err = InvalidArgument(
        "call_id is not a GUID", reason="INVALID_CALL_ID", metadata={"field": "call_id"}
    )
    status = to_status(err)
    assert status.code == C.INVALID_ARGUMENT
    assert status.details == "call_id is not a GUID"
    body = rich(status)
    assert body.code == C.INVALID_ARGUMENT.value[0]
    assert body.message == "call_id is not a GUID"
    info, retry = unpack_details(body)
    assert info.reason == "INVALID_CALL_ID"
    assert info.domain == "commsgw"
    assert dict(info.metadata) == {"field": "call_id"}
    assert retry is None
    assert len(body.details) == 1


def test_a_kinds_default_reason() -> None:
    info, _ = unpack_details(rich(to_status(ResumeTokenExpired("gone"))))
    assert info.reason == "RESUME_TOKEN_EXPIRED"


@pytest.mark.parametrize(
    ("retry_after", "seconds", "nanos"), [(5.0, 5, 0), (1.25, 1, 250_000_000), (0.0, 0, 0)]
)
def test_a_graph_errors_retry_after_is_retry_info(
    retry_after: float, seconds: int, nanos: int
) -> None:
    err = GraphError(
        "Graph answered 429",
        reason="ACTIVITY_LIMIT_REACHED",
        http_status=429,
        request_id="rid",
        client_request_id="crid",
        retry_after=retry_after,
    )
    status = to_status(err)
    assert status.code == C.RESOURCE_EXHAUSTED
    body = rich(status)
    info, retry = unpack_details(body)
    assert info.reason == "ACTIVITY_LIMIT_REACHED"
    assert dict(info.metadata) == {
        "http_status": "429",
        "graph_request_id": "rid",
        "client_request_id": "crid",
    }
    assert len(body.details) == 2
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (seconds, nanos)


def test_no_retry_info_without_retry_after() -> None:
    body = rich(to_status(GraphError("x", http_status=503)))
    assert unpack_details(body)[1] is None
    assert len(body.details) == 1


@pytest.mark.parametrize(
    ("err", "status"),
    [
        (NotificationAuthError("x"), 401),
        (NotificationFormatError("x"), 400),
        (NotificationTooLarge("x"), 413),
        (NotificationNotJson("x"), 415),
        (NotificationRateLimited("x", retry_after=2), 429),
        (EventLogUnavailable("x"), 503),  # Graph redelivers
        (NotificationError("x"), 400),
        (ShuttingDown("x"), 500),  # not the webhook's to answer: no entry
        (InvalidArgument("x"), 500),
        (CommsgwError("x"), 500),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_the_webhooks_table(err: CommsgwError, status: int) -> None:
    assert http_status_of(err) == status


def test_a_new_notification_error_is_a_400() -> None:
    class NotificationFromTheFuture(NotificationError):
        pass

    class TooLargeByFar(NotificationTooLarge):
        pass

    assert http_status_of(NotificationFromTheFuture("x")) == 400
    assert http_status_of(TooLargeByFar("x")) == 413
