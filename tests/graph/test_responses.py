"""commsgw.graph._responses: Graph's error codes in UPPER_SNAKE form, and GraphErrors read
from Graph's error answers (keys in any case, innerError or innererror, no body at all)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from commsgw._errors import GraphError
from commsgw.graph._responses import error_from_response, upper_snake
from commsgw.graph._transport import Reply

CRID = "2f1f0d55-8ad4-4e0c-a0a6-18b0d5f9ab11"
SNAKE = re.compile(r"^[A-Z0-9]+(_[A-Z0-9]+)*$")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("activityLimitReached", "ACTIVITY_LIMIT_REACHED"),
        ("BadRequest", "BAD_REQUEST"),
        ("UnknownError", "UNKNOWN_ERROR"),
        ("itemNotFound", "ITEM_NOT_FOUND"),
        ("InvalidAuthenticationToken", "INVALID_AUTHENTICATION_TOKEN"),
        ("serviceNotAvailable", "SERVICE_NOT_AVAILABLE"),
        ("HTTPError", "HTTP_ERROR"),  # an acronym stays one word
        ("Request_ResourceNotFound", "REQUEST_RESOURCE_NOT_FOUND"),
        ("  generalException ", "GENERAL_EXCEPTION"),
        ("a.b-c", "A_B_C"),
        ("ALREADY_SNAKE", "ALREADY_SNAKE"),
        ("", "UNKNOWN_GRAPH_ERROR"),
        ("-_-", "UNKNOWN_GRAPH_ERROR"),
    ],
)
def test_upper_snake(code: str, reason: str) -> None:
    assert upper_snake(code) == reason


@given(st.text(max_size=60))
def test_upper_snake_is_always_upper_snake(code: str) -> None:
    reason = upper_snake(code)
    assert SNAKE.match(reason), reason


def graph_error(
    status: int, body: Any = None, *, content: bytes | None = None, **headers: str
) -> GraphError:
    if content is not None:
        resp = httpx.Response(status, content=content, headers=headers)
    elif body is not None:
        resp = httpx.Response(status, json=body, headers=headers)
    else:
        resp = httpx.Response(status, headers=headers)
    reply = Reply(resp.status_code, resp.headers, resp.content, resp.reason_phrase)
    return error_from_response(reply, CRID)


def test_a_graph_error_body() -> None:
    err = graph_error(
        429,
        {
            "error": {
                "code": "activityLimitReached",
                "message": "Slow down.",
                "innerError": {"request-id": "rid-in-body", "date": "2024-01-01T00:00:00"},
            }
        },
        **{"request-id": "rid-in-header", "Retry-After": "3"},
    )
    assert isinstance(err, GraphError)
    assert err.reason == "ACTIVITY_LIMIT_REACHED"
    assert err.http_status == 429
    assert err.message == "Graph answered 429 activityLimitReached: Slow down."
    assert err.request_id == "rid-in-header"  # the header wins over the body's copy
    assert err.client_request_id == CRID
    assert err.retry_after == 3.0
    assert err.metadata == {
        "http_status": "429",
        "graph_request_id": "rid-in-header",
        "client_request_id": CRID,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"Error": {"Code": "Forbidden", "Message": "No.", "InnerError": {"Request-Id": "r1"}}},
        {"ERROR": {"CODE": "Forbidden", "MESSAGE": "No.", "innererror": {"REQUEST-ID": "r1"}}},
        {"error": {"code": "Forbidden", "message": "No.", "innererror": {"request-id": "r1"}}},
    ],
    ids=["Capitalised, innerError", "upper case, innererror", "lower case, innererror"],
)
def test_keys_are_read_in_any_case(body: dict[str, Any]) -> None:
    err = graph_error(403, body)
    assert err.reason == "FORBIDDEN"
    assert err.message == "Graph answered 403 Forbidden: No."
    assert err.request_id == "r1"  # no header: the body's innerError
    assert err.retry_after is None


@pytest.mark.parametrize(
    ("kwargs", "reason_phrase"),
    [
        ({}, "Service Unavailable"),
        ({"content": b"<html>bad gateway</html>"}, "Service Unavailable"),
        ({"body": ["not", "an", "object"]}, "Service Unavailable"),
        ({"body": {"error": "just a string"}}, "Service Unavailable"),
        ({"body": {"error": {"code": "", "message": ""}}}, "Service Unavailable"),
    ],
    ids=["no body", "not json", "json array", "error not an object", "empty code"],
)
def test_without_a_usable_error_body_the_status_names_it(
    kwargs: dict[str, Any], reason_phrase: str
) -> None:
    err = graph_error(503, **kwargs)
    assert err.reason == "GRAPH_HTTP_503"
    assert err.http_status == 503
    assert err.message == f"Graph answered 503: {reason_phrase}"
    assert err.request_id == ""
    assert "graph_request_id" not in err.metadata
    assert err.metadata["client_request_id"] == CRID


def test_a_message_without_a_code() -> None:
    err = graph_error(400, {"error": {"message": "Bad body."}})
    assert err.reason == "GRAPH_HTTP_400"
    assert err.message == "Graph answered 400: Bad body."


@pytest.mark.parametrize(("header", "seconds"), [("0", 0.0), ("1.5", 1.5), ("soon", None)])
def test_retry_after_header(header: str, seconds: float | None) -> None:
    assert graph_error(503, **{"Retry-After": header}).retry_after == seconds
