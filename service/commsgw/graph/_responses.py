"""Reading Graph's error answers: error bodies (keys in any case) and error codes."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from commsgw._errors import GraphError
from commsgw.graph._retry import parse_retry_after
from commsgw.graph._transport import Reply

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^A-Za-z0-9]+")


def upper_snake(code: str) -> str:
    """Graph's error code in UPPER_SNAKE form: activityLimitReached -> ACTIVITY_LIMIT_REACHED."""
    spaced = _CAMEL_BOUNDARY.sub("_", code.strip())
    return _NON_WORD.sub("_", spaced).strip("_").upper() or "UNKNOWN_GRAPH_ERROR"


def _lower_keys(obj: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in obj.items()} if isinstance(obj, dict) else {}


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def error_from_response(resp: Reply, client_request_id: str) -> GraphError:
    """A GraphError from a Graph error response (keys read case-insensitively)."""
    try:
        body = msgspec.json.decode(resp.content)
    except msgspec.DecodeError:
        body = None
    err = _lower_keys(_lower_keys(body).get("error"))
    inner = _lower_keys(err.get("innererror"))
    graph_code = str(err.get("code") or "")
    message = str(err.get("message") or "") or resp.reason or "Graph error"
    request_id = resp.headers.get("request-id") or str(inner.get("request-id") or "")
    reason = upper_snake(graph_code) if graph_code else f"GRAPH_HTTP_{resp.status}"
    return GraphError(
        f"Graph answered {resp.status}" + (f" {graph_code}" if graph_code else "") + f": {message}",
        reason=reason,
        http_status=resp.status,
        request_id=request_id,
        client_request_id=client_request_id,
        retry_after=parse_retry_after(resp.headers.get("retry-after")),
    )
