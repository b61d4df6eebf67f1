"""The gateway's one exception hierarchy.

Every error the gateway raises on purpose derives from CommsgwError. An error says what
happened: its class is the kind, `reason` is the stable UPPER_SNAKE word a caller branches on
(google.rpc.ErrorInfo.reason; every gateway reason is listed in the contract's ErrorReason
enum), `metadata` the ErrorInfo metadata; GraphError adds Graph's HTTP status, request-id and
Retry-After. No error chooses a gRPC status code: `commsgw.server._status` is the one table
that turns an error into a status, and the webhook's one table (`commsgw.notifications.
_webhook`) turns a NotificationError into an HTTP answer.

    CommsgwError
    ├── ConfigError              a setting is invalid; start-up stops
    ├── InvalidArgument          a caller's input is malformed; nothing was sent to Graph
    ├── FailedPrecondition       the gateway's settings or Graph's cloud cannot serve it
    ├── CallerError              who is calling, and how much
    │   ├── Unauthenticated      no credentials, or unknown ones
    │   ├── PermissionDenied     known caller, not allowed (this method or this tenant)
    │   └── TooManyStreams       a stream limit is reached
    ├── GraphError               Graph answered with an error (http_status), or did not answer
    │   ├── GraphUnreachable     no connection, or it broke before an answer
    │   ├── GraphTimeout         sent, but no answer within the gateway's Graph timeout
    │   ├── GraphOutcomeUnknown  the connection broke after an unsafe request was sent
    │   ├── GraphBadResponse     a success status with a body that is not what Graph sends
    │   ├── DeadlineExceeded     the caller's deadline ran out first
    │   └── TokenError           no app token could be acquired
    ├── OperationNotDone         a wait ended before the operation was terminal
    ├── WatchError               a watch cannot go on from where it is
    │   ├── ResumeTokenExpired   the token points before what the log retains, or elsewhere
    │   └── SubscriberTooSlow    the subscriber's bounded buffer overflowed
    ├── Unavailable              the gateway cannot serve this right now
    │   ├── EventLogUnavailable  the event log cannot be written or read
    │   └── ShuttingDown         the gateway is draining
    └── NotificationError        a webhook POST is refused
        ├── NotificationAuthError    its bearer token is missing or invalid
        ├── NotificationFormatError  its body is not a commsNotifications document
        ├── NotificationTooLarge     it, or one of its events, is too large to deliver
        ├── NotificationNotJson      its Content-Type is not application/json
        └── NotificationRateLimited  its source sends faster than the webhook's rate
"""

from __future__ import annotations

from collections.abc import Mapping


class CommsgwError(Exception):
    """Root of every error the gateway raises on purpose."""

    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class ConfigError(CommsgwError):
    """An invalid setting; start-up stops with this message (which names the setting)."""

    reason = "INVALID_CONFIGURATION"


class InvalidArgument(CommsgwError):
    """A caller's input is malformed; nothing was sent to Graph."""

    reason = "INVALID_ARGUMENT"


class FailedPrecondition(CommsgwError):
    """The request is well-formed but the gateway's settings (or Graph's offer in this
    national cloud) cannot serve it; nothing was sent to Graph."""

    reason = "FAILED_PRECONDITION"


class CallerError(CommsgwError):
    """About the caller rather than the request: who it is, what it may do, how much."""


class Unauthenticated(CallerError):
    """The caller presented no credentials, or unknown ones."""

    reason = "CALLER_UNAUTHENTICATED"


class PermissionDenied(CallerError):
    """The caller is known but not allowed to do this (or not for this tenant)."""

    reason = "CALLER_NOT_PERMITTED"


class TooManyStreams(CallerError):
    """A stream limit (in total or per caller) is reached."""

    reason = "TOO_MANY_STREAMS"


class GraphError(CommsgwError):
    """Graph answered with an error (`http_status` is set), or did not answer (subclasses)."""

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        http_status: int | None = None,
        request_id: str = "",
        client_request_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        metadata: dict[str, str] = {}
        if http_status is not None:
            metadata["http_status"] = str(http_status)
        if request_id:
            metadata["graph_request_id"] = request_id
        if client_request_id:
            metadata["client_request_id"] = client_request_id
        super().__init__(message, reason=reason, metadata=metadata)
        self.http_status = http_status
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.retry_after = retry_after


class GraphUnreachable(GraphError):
    """No connection to Graph, or it broke before an answer came."""

    reason = "GRAPH_UNREACHABLE"


class GraphTimeout(GraphError):
    """The request was sent but Graph did not answer within the gateway's Graph timeout; it may
    have acted, so it is not retried."""

    reason = "GRAPH_TIMEOUT"


class GraphOutcomeUnknown(GraphError):
    """The connection broke after a request that is not idempotent was sent: Graph may have
    acted on it, so it was not retried."""

    reason = "GRAPH_OUTCOME_UNKNOWN"


class GraphBadResponse(GraphError):
    """Graph answered a success status with a body that is not what it documents."""

    reason = "GRAPH_BAD_RESPONSE"


class DeadlineExceeded(GraphError):
    """The caller's deadline ran out before Graph answered."""

    reason = "DEADLINE_EXCEEDED"


class TokenError(GraphError):
    """No app token could be acquired for Graph."""

    reason = "TOKEN_ACQUISITION_FAILED"


class OperationNotDone(CommsgwError):
    """A wait for an operation ended (its deadline) before the operation was terminal;
    `operation` is the last known state (a contract Operation message), None when unknown."""

    reason = "OPERATION_NOT_DONE"

    def __init__(self, message: str, *, operation: object | None = None) -> None:
        super().__init__(message)
        self.operation = operation


class WatchError(CommsgwError):
    """A watch cannot go on from where it is; the caller resumes or starts again."""


class ResumeTokenExpired(WatchError):
    """A resume token points before what the event log retains, or into another log."""

    reason = "RESUME_TOKEN_EXPIRED"


class SubscriberTooSlow(WatchError):
    """A subscriber's bounded buffer overflowed; it must resume from its last token."""

    reason = "SUBSCRIBER_TOO_SLOW"


class Unavailable(CommsgwError):
    """The gateway cannot serve this right now; retry shortly or on another replica."""

    reason = "UNAVAILABLE"


class EventLogUnavailable(Unavailable):
    """The event log cannot be written or read right now."""

    reason = "EVENT_LOG_UNAVAILABLE"


class ShuttingDown(Unavailable):
    """The gateway is draining; resume elsewhere."""

    reason = "SHUTTING_DOWN"


class NotificationError(CommsgwError):
    """A webhook request is refused (the webhook's table gives its HTTP answer)."""

    reason = "BAD_NOTIFICATION"


class NotificationAuthError(NotificationError):
    """The notification's bearer token is missing or fails validation."""

    reason = "NOTIFICATION_UNAUTHENTICATED"


class NotificationFormatError(NotificationError):
    """The body is not a commsNotifications document."""

    reason = "NOTIFICATION_MALFORMED"


class NotificationTooLarge(NotificationError):
    """The body, or one of the events parsed from it, is too large to store or deliver."""

    reason = "NOTIFICATION_TOO_LARGE"


class NotificationNotJson(NotificationError):
    """The POST's Content-Type is not application/json."""

    reason = "NOTIFICATION_NOT_JSON"


class NotificationRateLimited(NotificationError):
    """The POST's source address exceeds the webhook's rate; `retry_after` seconds to wait."""

    reason = "NOTIFICATION_RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
