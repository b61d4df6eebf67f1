"""The ``/_emulator/`` control API, declared once: the routes are made from :data:`CONTROLS` and
``GET /_emulator/openapi.json`` serves the OpenAPI 3.1 document made from it (and from the body
types of ``_control_types``). A control is added here, and its handler is the method named by its
``operation_id`` on :class:`~commsgw.emulator._control.Controls`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from commsgw.emulator import _control_types as t


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Control:
    method: str
    path: str  # as OpenAPI and aiohttp both write it: /_emulator/calls/{callId}
    operation_id: str
    summary: str
    responses: dict[int, str]
    body: type[Any] | None = None
    body_schema: dict[str, Any] | None = None  # instead of body's
    response: type[Any] | None = None  # the schema of the first 2xx answer's body
    query: tuple[Param, ...] = ()
    tag: str = "emulator"
    # served by the Graph API (a recording's download), not by the controls
    graph_served: bool = False

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


CALL = "/_emulator/calls/{callId}"
_CALL_ERRORS = {
    400: "a bad body",
    404: "an unknown or ended call",
    409: "a call in the wrong state",
}

CONTROLS: tuple[Control, ...] = (
    Control(
        "GET",
        "/_emulator/health",
        "health",
        "Is it up (its base URL and timings)",
        {200: "{status, baseUrl, timings}"},
    ),
    Control(
        "GET", "/_emulator/openapi.json", "openApi", "This document (OpenAPI 3.1)", {200: "it"}
    ),
    Control(
        "GET",
        "/_emulator/faults",
        "listFaults",
        "The faults still armed (with their id, remaining uses and hits)",
        {200: "{faults: [...]}"},
        tag="faults",
    ),
    Control(
        "POST",
        "/_emulator/faults",
        "addFaults",
        "Arm faults: one fault, an array of them, or {faults: [...]}",
        {201: "{ids, faults}", 400: "a bad fault"},
        body=t.FaultBody,
        body_schema={
            "oneOf": [
                {"$ref": "#/components/schemas/FaultBody"},
                {"type": "array", "items": {"$ref": "#/components/schemas/FaultBody"}},
                {"$ref": "#/components/schemas/FaultList"},
            ]
        },
        tag="faults",
    ),
    Control(
        "DELETE",
        "/_emulator/faults",
        "clearFaults",
        "Disarm every fault",
        {204: "done"},
        tag="faults",
    ),
    Control(
        "POST",
        "/_emulator/reset",
        "reset",
        "Back to as started, between tests: calls (ended without a notification), journal, "
        "faults, deliveries, queued notifications, callee settings and far-end scripts",
        {204: "done"},
    ),
    Control(
        "POST",
        "/_emulator/revoke-tokens",
        "revokeTokens",
        "Invalidate every access token issued so far (Graph then answers 401)",
        {204: "done"},
    ),
    Control(
        "POST",
        "/_emulator/rotate-notification-key",
        "rotateNotificationKey",
        "Sign notifications with a new key (new kid)",
        {200: "{kid}"},
        query=(
            Param(
                "keepOld",
                "false: drop the old key from the JWKS (default true)",
                {"type": "boolean"},
            ),
        ),
    ),
    Control(
        "GET",
        "/_emulator/calls",
        "listCalls",
        "Every call (Graph's shape, plus operations, roster and the far end's settings)",
        {200: "{value: [...]}"},
        tag="calls",
    ),
    Control(
        "GET",
        CALL,
        "getCall",
        "One call, as listCalls shows it",
        {200: "the call", 404: "unknown"},
        tag="calls",
    ),
    Control(
        "GET",
        "/_emulator/requests",
        "listRequests",
        "The request journal: every request Graph (and the token service) received, in order",
        {200: "{value: [...]}", 400: "a bad filter"},
        response=t.Journal,
        query=(
            Param("path", "a regular expression searched in the path"),
            Param("method", "an HTTP method (any case)"),
            Param("callId", "the call the request concerns"),
        ),
        tag="journal",
    ),
    Control(
        "POST",
        "/_emulator/requests/count",
        "countRequests",
        "Verify: how many journal entries match a pattern (method, path, call, status, and a "
        "subset of the JSON body), and which",
        {200: "{count, requests}", 400: "a bad pattern"},
        body=t.RequestPattern,
        response=t.CountResult,
        tag="journal",
    ),
    Control(
        "GET",
        "/_emulator/deliveries",
        "listDeliveries",
        "Every POST of notifications to a callback, in order",
        {200: "{value: [...]}"},
        query=(Param("callId", "only this call's"),),
        tag="journal",
    ),
    Control(
        "POST",
        "/_emulator/calls",
        "ring",
        "Ring the bot: an incoming call from a phone, a user, or into a meeting",
        {201: "{id, call}", 400: "a bad body"},
        body=t.RingBody,
        tag="far end",
    ),
    Control(
        "POST",
        CALL + "/tones",
        "pressTones",
        "The caller presses keys (toneInfo once subscribed; a stop tone ends a recording)",
        {200: "{sequenceIds} (at once)", 202: "{dueS} (timed)", **_CALL_ERRORS},
        body=t.TonesBody,
        tag="far end",
    ),
    Control(
        "PUT",
        CALL + "/caller",
        "setCaller",
        "What the caller says into the next recordings, and when they fall silent",
        {200: "the caller model", **_CALL_ERRORS},
        body=t.CallerBody,
        tag="far end",
    ),
    Control(
        "POST",
        CALL + "/hang-up",
        "hangUp",
        "The other party hangs up (terminated 200/4521; group calls 200/5002)",
        {204: "done", 404: "an unknown or ended call"},
        tag="far end",
    ),
    Control(
        "POST",
        CALL + "/drop",
        "drop",
        "The call ends without a termination notification (a lost callback): Graph then "
        "answers 404 for it and sends nothing more about it",
        {204: "done", 404: "an unknown or ended call"},
        tag="far end",
    ),
    Control(
        "PUT",
        CALL + "/media",
        "setCallMedia",
        "How long each prompt of the call plays (to cancel one while it plays)",
        {200: "{promptS}", **_CALL_ERRORS},
        body=t.CallMediaBody,
        tag="far end",
    ),
    Control(
        "POST",
        CALL + "/delivery-faults",
        "addDeliveryFault",
        "Mis-deliver the call's next notifications: twice, late, or out of order",
        {201: "{deliveryFaults: [...]} (those armed for the call)", **_CALL_ERRORS},
        body=t.DeliveryFaultBody,
        tag="far end",
    ),
    Control(
        "POST",
        CALL + "/fail-next-transfer",
        "failNextTransfer",
        "The call's next transfer fails (resultInfo 500/7000)",
        {204: "done", 404: "an unknown or ended call"},
        tag="far end",
    ),
    Control(
        "PUT",
        "/_emulator/callees/{identityId}",
        "setCallee",
        "How a user id or phone number responds when the bot calls, invites or redirects to it",
        {200: "{response, ringS}", 400: "a bad body"},
        body=t.CalleeBody,
        tag="far end",
    ),
    Control(
        "GET",
        "/_emulator/recordings/{operationId}",
        "downloadRecording",
        "A finished recording's WAV (Authorization: Bearer <recordingAccessToken>)",
        {200: "audio/wav", 401: "no or a wrong token", 404: "no such recording"},
        tag="calls",
        graph_served=True,
    ),
    # The page (``_page``): each call as a live timeline, in a browser.
    Control(
        "GET", "/_emulator/", "page", "The timeline page (HTML)", {200: "text/html"}, tag="page"
    ),
    Control(
        "GET",
        "/_emulator/page/{asset}",
        "pageAsset",
        "The page's script and style sheet (timeline.js, timeline.css)",
        {200: "text/javascript or text/css", 404: "no such file"},
        tag="page",
    ),
    Control(
        "GET",
        "/_emulator/timeline",
        "timeline",
        "The page's live feed: the events since a cursor (requests, deliveries, the far end's "
        "and the tests' controls) and every call; waitS answers as soon as something changed",
        {200: "{cursor, reset, events, calls}", 400: "a bad cursor or waitS"},
        query=(
            Param("since", "the cursor of the previous answer (none: from the start)"),
            Param(
                "waitS", "wait up to this long for news (0 to 30, default 0)", {"type": "number"}
            ),
        ),
        tag="page",
    ),
)


def document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of :data:`CONTROLS`."""
    _, schemas = msgspec.json.schema_components(
        (*t.BODY_TYPES, *t.OUT_TYPES), ref_template="#/components/schemas/{name}"
    )
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    paths: dict[str, dict[str, Any]] = {}
    for c in CONTROLS:
        params = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in c.path_params
        ] + [
            {
                "name": q.name,
                "in": "query",
                "required": False,
                "description": q.description,
                "schema": q.schema,
            }
            for q in c.query
        ]
        responses: dict[str, Any] = {}
        for code, what in sorted(c.responses.items()):
            entry: dict[str, Any] = {"description": what}
            if code >= 400:
                entry["content"] = error
            elif c.response is not None and code < 300 and not responses:
                ref = f"#/components/schemas/{c.response.__name__}"
                entry["content"] = {"application/json": {"schema": {"$ref": ref}}}
            responses[str(code)] = entry
        op: dict[str, Any] = {
            "operationId": c.operation_id,
            "summary": c.summary,
            "tags": [c.tag],
            "responses": responses,
        }
        if params:
            op["parameters"] = params
        if c.body is not None:
            schema = c.body_schema or {"$ref": f"#/components/schemas/{c.body.__name__}"}
            # required when a field is (an empty body is {})
            required = any(f.required for f in msgspec.structs.fields(c.body))
            op["requestBody"] = {
                "required": required,
                "content": {"application/json": {"schema": schema}},
            }
        paths.setdefault(c.path, {})[c.method.lower()] = op
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "commsgw Graph emulator: control API",
            "version": "1",
            "description": "Test controls of the local Graph emulator (never authenticated, "
            "never faulted). Every field is camelCase; every failure is a JSON error body "
            "{error: {code, message, innerError}}.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
