"""The emulator holds every Graph request to Graph's published v1.0 metadata (the extract in
``commsgw._graphmeta``): what the metadata does not allow is answered as Graph answers a bad
request, 400 ``BadRequest`` with Graph's error body, before any handler sees it. The message
names the first problem and where it is (a JSON pointer into the body, or the path); the
others follow it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from commsgw._graphmeta import PATH, Violation, check_request
from commsgw.emulator._errors import GraphError, bad_request
from commsgw.emulator._graph_common import authenticate
from commsgw.emulator._state import EmulatorState
from commsgw.emulator._validate import PARSED_BODY

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_NO_BODY = object()


def _parsed(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _NO_BODY  # not JSON: the handler answers that as it always has


def message(problems: list[Violation]) -> str:
    """Graph-like prose for the problems, each with where it is."""
    parts = [
        f"{v.message} (in the request path)"
        if v.pointer == PATH
        else f"{v.message} (at {v.pointer or '/'})"
        for v in problems
    ]
    return "The request does not conform to the v1.0 metadata: " + "; ".join(parts) + "."


def conforming(state: EmulatorState, handler: Handler) -> Handler:
    """``handler``, behind the metadata's judgement of the request."""

    async def checked(request: web.Request) -> web.StreamResponse:
        body = _parsed(await request.read())  # aiohttp keeps what the middleware read
        if body is not _NO_BODY:
            request[PARSED_BODY] = body  # the handler's json_body takes it from here
            problems = check_request(request.method, request.path, body)
            if problems:
                authenticate(state, request)  # a bad token is still 401, as Graph answers
                raise _refusal(problems)
        return await handler(request)

    return checked


def _refusal(problems: list[Violation]) -> GraphError:
    return bad_request(message(problems))
