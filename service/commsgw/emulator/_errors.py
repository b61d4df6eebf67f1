"""Graph-style errors: the one way the fake Graph (and the test controls) answer a failure.

``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``.
Status choices: 400 ``BadRequest`` for a body Graph would refuse, 404 ``itemNotFound`` for an
unknown or ended call (Graph's keepAlive page documents 404 for an ended call; the others are
undocumented and answer the same), and 409 ``Conflict`` for an action the call's state does not
allow (e.g. answering an established call: undocumented; Graph's error guide describes 409 as
"the current state conflicts with what the request expects").
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping

from aiohttp import web

# The id the middleware gives each request (its ``request-id`` header and error bodies).
REQUEST_ID = web.RequestKey("request_id", str)

_DEFAULT_GRAPH_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Forbidden",
    404: "itemNotFound",
    405: "BadRequest",
    409: "Conflict",
    429: "activityLimitReached",
    500: "InternalServerError",
    502: "BadGateway",
    503: "serviceNotAvailable",
    504: "GatewayTimeout",
}


def default_graph_code(status: int) -> str:
    """The error code Graph answers with for an HTTP status."""
    return _DEFAULT_GRAPH_CODES.get(status, "UnknownError")


def graph_error(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An error response shaped like Graph's."""
    rid = request.get(REQUEST_ID) or str(uuid.uuid4())
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": rid,
                "client-request-id": request.headers.get("client-request-id", rid),
            },
        }
    }
    return web.json_response(body, status=status, headers=dict(headers or {}))


class GraphError(Exception):
    """Raised by a Graph handler; the middleware renders it with :func:`graph_error`."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self, request: web.Request) -> web.Response:
        return graph_error(request, self.status, self.code, self.message, self.headers)


def bad_request(message: str) -> GraphError:
    return GraphError(400, default_graph_code(400), message)


def not_found(message: str) -> GraphError:
    return GraphError(404, default_graph_code(404), message)


def call_not_found(raw_id: str) -> GraphError:
    return not_found(f"Call '{raw_id}' was not found.")


def wrong_state(call_id: str, state: str, action: str, allowed: Iterable[str]) -> GraphError:
    wanted = " or ".join(sorted(allowed))
    return GraphError(
        409,
        default_graph_code(409),
        f"Call '{call_id}' is {state}: {action} needs a call that is {wanted}.",
    )
