"""The request journal and the delivery log over HTTP, and request verification.

``GET /_emulator/requests`` lists every request the emulator answered except the controls'
own (Graph, the token service, recording downloads), each with its parsed JSON body and the
call it concerns; ``?path=`` (a regular expression), ``?method=`` and ``?callId=`` filter it.
``POST /_emulator/requests/count`` counts the entries matching a :class:`RequestPattern`, whose
``body`` is matched as a subset (:func:`body_matches`). ``GET /_emulator/deliveries`` lists the
notification POSTs. The matching is pure; the handlers only read the state.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from commsgw._ids import normalize_guid
from commsgw.emulator import _control_types as t
from commsgw.emulator._control_calls import Handler
from commsgw.emulator._delivery import DeliveryAttempt
from commsgw.emulator._errors import bad_request
from commsgw.emulator._match import body_matches
from commsgw.emulator._state import EmulatorState, RequestRecord

__all__ = ["JournalRoutes", "body_matches", "call_id_of", "journal", "parsed_body"]

_CALL_IN_PATH = re.compile(r"/communications/calls/([^/?]+)", re.IGNORECASE)
CONTROL_PREFIX = "/_emulator/"
RECORDINGS_PREFIX = "/_emulator/recordings/"


def iso_time(at: float) -> str:
    """An epoch time as ISO 8601 UTC with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    stamp = dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def call_id_of(path: str, location: str | None) -> str | None:
    """The call a Graph request concerns: the one in its path, else the one its answer's
    ``Location`` names (a new call)."""
    for text in (path, location or ""):
        match = _CALL_IN_PATH.search(text)
        if match is not None and (cid := normalize_guid(match.group(1))):
            return cid
    return None


def parsed_body(raw: bytes) -> Any:
    """A request body as JSON (a string when it is not JSON; None when empty)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def entry(record: RequestRecord) -> t.JournalEntry:
    headers = dict(record.headers)
    fault_id = headers.pop("x-emulator-fault", None)
    return t.JournalEntry(
        method=record.method,
        path=record.path,
        query=dict(parse_qsl(record.query, keep_blank_values=True)),
        headers=headers,
        body=parsed_body(record.body),
        status=record.status,
        time=iso_time(record.at),
        call_id=call_id_of(record.path, headers.get("location")),
        fault_id=fault_id,
    )


def journal(records: Iterable[RequestRecord]) -> list[t.JournalEntry]:
    """What ``GET /_emulator/requests`` lists: every request but the controls' own."""
    return [
        entry(r)
        for r in records
        if not r.path.startswith(CONTROL_PREFIX) or r.path.startswith(RECORDINGS_PREFIX)
    ]


def compiled(pattern: str | None, what: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise bad_request(f"{what} is not a regular expression: {exc}") from None


def guid(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    cid = normalize_guid(value)
    if not cid:
        raise bad_request(f"{what} {value!r} is not a call id (a GUID).")
    return cid


def matching(entries: Iterable[t.JournalEntry], p: t.RequestPattern) -> list[t.JournalEntry]:
    """The entries that meet every condition of ``p`` (ValueError-free: ``p`` is checked)."""
    rx, cid = compiled(p.path_pattern, "pathPattern"), guid(p.call_id, "callId")
    method = p.method.upper() if p.method is not None else None
    return [
        e
        for e in entries
        if (method is None or e.method == method)
        and (rx is None or rx.search(e.path) is not None)
        and (cid is None or e.call_id == cid)
        and (p.status is None or e.status == p.status)
        and (p.body is None or body_matches(p.body, e.body))
    ]


def delivery(a: DeliveryAttempt) -> t.DeliveryEntry:
    return t.DeliveryEntry(
        url=a.url,
        status=a.status,
        call_id=a.call_id,
        attempt=a.attempt,
        error=a.error,
        time=iso_time(a.at),
        misdelivery=a.misdelivery,
    )


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(value), status=status, content_type="application/json"
    )


class JournalRoutes:
    """The journal controls of one emulator instance."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self.handlers: dict[str, Handler] = {
            "listRequests": self._h_requests,
            "countRequests": self._h_count,
            "listDeliveries": self._h_deliveries,
        }

    async def _h_requests(self, request: web.Request) -> web.Response:
        q = request.query
        unknown = sorted(set(q) - {"path", "method", "callId"})
        if unknown:
            raise bad_request(f"Unknown query parameter(s): {', '.join(unknown)}.")
        pattern = t.RequestPattern(
            method=q.get("method"), path_pattern=q.get("path"), call_id=q.get("callId")
        )
        return _json(t.Journal(matching(journal(self._state.request_log), pattern)))

    async def _h_count(self, request: web.Request) -> web.Response:
        pattern = t.decode(await request.read(), t.RequestPattern)
        found = matching(journal(self._state.request_log), pattern)
        return _json(t.CountResult(count=len(found), requests=found))

    async def _h_deliveries(self, request: web.Request) -> web.Response:
        cid = guid(request.query.get("callId"), "callId")
        attempts = self._state.delivery_log
        return _json({"value": [delivery(a) for a in attempts if cid is None or a.call_id == cid]})
