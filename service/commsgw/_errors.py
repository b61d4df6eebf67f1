"""The gateway's one exception hierarchy.

Every error the gateway raises on purpose derives from CommsgwError. Each carries the gRPC
status it stands for and a stable `reason` (UPPER_SNAKE) for google.rpc.ErrorInfo; the
translation to a gRPC status happens in exactly one place (`commsgw._status`), and the webhook
maps the notification errors to HTTP codes in `commsgw._webhook`.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc


class CommsgwError(Exception):
    """Root of every error the gateway raises on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
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

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "INVALID_CONFIGURATION"


class InvalidArgument(CommsgwError):
    """A caller's input is malformed; nothing was sent to Graph."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"


class GraphError(CommsgwError):
    """Graph answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode,
        reason: str,
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
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.retry_after = retry_after


class TokenError(CommsgwError):
    """No app token could be acquired for Graph."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "TOKEN_ACQUISITION_FAILED"


class ResumeTokenExpired(CommsgwError):
    """A resume token points before what the event log retains, or into another log."""

    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "RESUME_TOKEN_EXPIRED"


class SubscriberTooSlow(CommsgwError):
    """A subscriber's bounded buffer overflowed; it must resume from its last token."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "SUBSCRIBER_TOO_SLOW"


class EventLogUnavailable(CommsgwError):
    """The event log cannot be written or read right now."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "EVENT_LOG_UNAVAILABLE"


class ShuttingDown(CommsgwError):
    """The gateway is draining; resume elsewhere."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "SHUTTING_DOWN"


class NotificationError(CommsgwError):
    """A webhook request is refused; `http_status` is the answer the webhook gives."""

    http_status: int = 400
    reason = "BAD_NOTIFICATION"


class NotificationAuthError(NotificationError):
    """The notification's bearer token is missing or fails validation (HTTP 401)."""

    http_status = 401
    reason = "NOTIFICATION_UNAUTHENTICATED"


class NotificationFormatError(NotificationError):
    """The body is not a commsNotifications document (HTTP 400)."""

    http_status = 400
    reason = "NOTIFICATION_MALFORMED"


class Unauthenticated(CommsgwError):
    """The caller presented no credentials, or unknown ones."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "CALLER_UNAUTHENTICATED"


class PermissionDenied(CommsgwError):
    """The caller is known but not allowed to do this (or not for this tenant)."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "CALLER_NOT_PERMITTED"


class TooManyStreams(CommsgwError):
    """A stream limit (in total or per caller) is reached."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "TOO_MANY_STREAMS"
