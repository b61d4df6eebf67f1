"""What the emulator's page (``GET /_emulator/``) shows, as its live feed
``GET /_emulator/timeline`` answers it: the events since a cursor and every call's state.

The events are made from the two logs the journal controls read (``/_emulator/requests``: the
request log; ``/_emulator/deliveries``: the delivery log), in the same shapes, with a short
human title each: the bot's requests to Graph, the notifications Graph sent with their delivery
result, the far end's actions made over the controls (keys, hang-up, drop) and the other test
controls. The calls are those of ``/_emulator/calls``, cut down to what a timeline needs.

A cursor names how far the client has read both logs, which generation of them (the time of
their first entry: a reset empties them, and a cursor from before it starts the client over) and
a checksum of the calls it last got (so a long poll can wait until something changed). Every
function here is pure; the handlers are in ``_page``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from commsgw._ids import normalize_guid
from commsgw.emulator._calls import ODATA_TYPES, Call
from commsgw.emulator._control_journal import (
    CONTROL_PREFIX,
    RECORDINGS_PREFIX,
    delivery,
    entry,
    iso_time,
    parsed_body,
)
from commsgw.emulator._delivery import DeliveryAttempt
from commsgw.emulator._state import RequestRecord

# The result subcodes of a call the other party ended (p2p; a group call everyone else left).
FAR_END_HANG_UP = {4521, 5002}

_OP_KINDS = {odata.lower(): kind for kind, odata in reversed(ODATA_TYPES.items())}
_GRAPH_CALL = re.compile(r"^/v1\.0/communications/calls(?:/([^/]+)(?:/(.+))?)?$", re.IGNORECASE)
_TOKEN = re.compile(r"/oauth2(?:/v2\.0)?/token$")
_CONTROL_ON_CALL = re.compile(r"^/_emulator/calls/([^/]+)/([a-z-]+)$")
_CONTROL_TITLES = {
    "tones": "the caller presses keys",
    "hang-up": "the far end hangs up",
    "drop": "the call is dropped, without a termination notification",
    "caller": "what the caller says is set",
    "media": "how long prompts play is set",
    "delivery-faults": "a delivery fault is armed",
    "fail-next-transfer": "the next transfer is set to fail",
}


class Cursor(NamedTuple):
    requests: int  # request log entries read
    deliveries: int  # delivery log entries read
    first_request: int  # the first request's time in microseconds (0: the log was empty)
    first_delivery: int
    calls: int  # crc32 of the calls last sent

    def __str__(self) -> str:
        return ".".join(str(v) for v in self)

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """A cursor as :meth:`__str__` wrote it (ValueError otherwise)."""
        parts = text.split(".")
        if len(parts) != len(cls._fields) or not all(p.isdigit() for p in parts):
            raise ValueError(f"since {text!r} is not a cursor this emulator gave")
        return cls(*(int(p) for p in parts))


def _stamp(at: float) -> int:
    return round(at * 1_000_000)


def _first(log: Sequence[RequestRecord] | Sequence[DeliveryAttempt]) -> int:
    return _stamp(log[0].at) if log else 0


def is_stale(
    cursor: Cursor, records: Sequence[RequestRecord], attempts: Sequence[DeliveryAttempt]
) -> bool:
    """Whether ``cursor`` is from before a reset (the logs were emptied and refilled since)."""
    for read, first, log in (
        (cursor.requests, cursor.first_request, records),
        (cursor.deliveries, cursor.first_delivery, attempts),
    ):
        if read > len(log) or (read > 0 and _first(log) != first):
            return True
    return False


# ---------------------------------------------------------------------------- titles


def _context(body: Any) -> str | None:
    if isinstance(body, Mapping) and isinstance(cc := body.get("clientContext"), str):
        return cc
    return None


def _quoted(text: str) -> str:
    return f"\u201c{text}\u201d"  # “text”: as it is, no escapes


def _prompt_uris(body: Any) -> list[str]:
    prompts = body.get("prompts") if isinstance(body, Mapping) else None
    if not isinstance(prompts, list):
        single = body.get("prompt") if isinstance(body, Mapping) else None  # recordResponse
        prompts = [single] if isinstance(single, Mapping) else []
    uris = []
    for p in prompts:
        info = p.get("mediaInfo") if isinstance(p, Mapping) else None
        if isinstance(info, Mapping) and isinstance(uri := info.get("uri"), str):
            uris.append(uri)
    return uris


def request_title(method: str, path: str, body: Any) -> str:
    """A short name of what a request to Graph (or the token service) asks for."""
    match = _GRAPH_CALL.match(path)
    if match is None:
        if _TOKEN.search(path) and method == "POST":
            return "token request"
        if path.startswith(RECORDINGS_PREFIX):
            return "recording download"
        return f"{method} {path}"
    call, rest = match.groups()
    if call is None:
        what = {"POST": "create a call", "GET": "list the calls"}.get(method)
    elif rest is None:
        what = {"GET": "get the call", "DELETE": "hang up (delete the call)"}.get(method)
    elif rest.lower().startswith("operations/"):
        what = "get an operation" if method == "GET" else None
    else:
        what = rest if method == "POST" else f"{method} {rest}"
    return what or f"{method} {path}"


def request_note(body: Any) -> str | None:
    """What a request's body says that a reader looks for first: its clientContext and the
    prompts it plays."""
    parts = []
    if (cc := _context(body)) is not None:
        parts.append(f"clientContext {_quoted(cc)}")
    uris = _prompt_uris(body)
    if uris:
        parts.append("prompts " + ", ".join(uris))
    return "; ".join(parts) or None


def _party(info: Any) -> str | None:
    """``phone +1425...``, ``user Test User``: who a participantInfo (or identitySet) names."""
    if not isinstance(info, Mapping):
        return None
    identity = info.get("identity", info)
    if not isinstance(identity, Mapping):
        return None
    for slot, who in identity.items():
        if slot.startswith("@") or not isinstance(who, Mapping):
            continue
        name = who.get("displayName") or who.get("id")
        return f"{slot} {name}" if name else slot
    return None


def _result(info: Any) -> str | None:
    if not isinstance(info, Mapping):
        return None
    sub = info.get("subcode", info.get("subCode"))
    message = info.get("message")
    text = f"{info.get('code')}/{sub}"
    return f"{text} {message}" if message else text


def _is_far_end_hang_up(info: Any) -> bool:
    if not isinstance(info, Mapping):
        return False
    return info.get("subcode", info.get("subCode")) in FAR_END_HANG_UP


def notification_title(n: Any) -> tuple[str, bool]:
    """One commsNotification in a few words, and whether it reports the far end's doing (a key
    the caller pressed, the other party hanging up)."""
    if not isinstance(n, Mapping):
        return "a notification that is not an object", False
    change = n.get("changeType")
    data = n.get("resourceData")
    if isinstance(data, list):
        return f"roster {change}: {len(data)} participant(s)", False
    if not isinstance(data, Mapping):
        return f"{change} {n.get('resourceUrl')}", False
    odata = str(data.get("@odata.type", "")).lower()
    if isinstance(tone := data.get("toneInfo"), Mapping):
        return f"tone {tone.get('tone')} (sequence {tone.get('sequenceId')})", True
    far = False
    if odata == "#microsoft.graph.call":
        state = data.get("state")
        text = f"call {change}" + (f": {state}" if state else "")
        if change == "created" and data.get("direction") == "incoming":
            caller = _party(data.get("source"))
            text += f" from {caller}" if caller else ""
        if (result := _result(data.get("resultInfo"))) is not None:
            text += f" ({result})"
        if _is_far_end_hang_up(data.get("resultInfo")):
            text += ": the far end hung up"
            far = True
    elif odata in _OP_KINDS:
        text = f"{_OP_KINDS[odata]} {data.get('status')}"
        if (cc := _context(data)) is not None:
            text += f" {_quoted(cc)}"
        if isinstance(reason := data.get("completionReason"), str):
            text += f", {reason}"
        if (result := _result(data.get("resultInfo"))) is not None:
            text += f" ({result})"
    else:
        text = f"{change} {n.get('resourceUrl')}"
    return text, far


# ---------------------------------------------------------------------------- events


def _control_event(record: RequestRecord) -> dict[str, Any] | None:
    """A control that changed something (reads are left out; a ring shows as its call)."""
    if record.method == "GET" or record.path == "/_emulator/calls":
        return None
    match = _CONTROL_ON_CALL.match(record.path)
    title = _CONTROL_TITLES.get(match.group(2)) if match is not None else None
    if title is not None and match is not None and match.group(2) == "tones":
        keys = parsed_body(record.body)
        if isinstance(keys, Mapping) and isinstance(tones := keys.get("tones"), (str, list)):
            title += f": {', '.join(map(str, tones)) if isinstance(tones, list) else tones}"
    return {
        "kind": "control",
        "actor": "farEnd" if title is not None else "test",
        "at": record.at,
        "time": iso_time(record.at),
        "callId": (normalize_guid(match.group(1)) or None) if match is not None else None,
        "title": title or f"{record.method} {record.path}",
        "status": record.status,
    }


def request_event(record: RequestRecord) -> dict[str, Any] | None:
    """A request the emulator answered, as the page shows it (None: not shown)."""
    if record.path.startswith(CONTROL_PREFIX) and not record.path.startswith(RECORDINGS_PREFIX):
        return _control_event(record)
    journaled = entry(record)
    return {
        "kind": "request",
        "actor": "bot",
        "at": record.at,
        "time": journaled.time,
        "callId": journaled.call_id,
        "title": request_title(record.method, record.path, journaled.body),
        "note": request_note(journaled.body),
        "status": record.status,
        "request": journaled,
    }


def notification_event(attempt: DeliveryAttempt) -> dict[str, Any]:
    """One POST of notifications to a callback, with what each notification says."""
    value = attempt.payload.get("value")
    notes = [notification_title(n) for n in value] if isinstance(value, list) else []
    return {
        "kind": "notification",
        "actor": "farEnd" if any(far for _, far in notes) else "graph",
        "at": attempt.at,
        "time": iso_time(attempt.at),
        "callId": attempt.call_id,
        "title": "; ".join(text for text, _ in notes) or "an empty notification",
        "notifications": [text for text, _ in notes],
        "status": attempt.status,
        "delivery": delivery(attempt),
        "payload": attempt.payload,
    }


# ---------------------------------------------------------------------------- calls


def call_view(call: Call) -> dict[str, Any]:
    """A call as the page heads its timeline: who, its state and its operations."""
    return {
        "id": call.id,
        "state": call.state,
        "direction": call.direction,
        "kind": call.kind,
        "at": call.created_at,
        "time": iso_time(call.created_at),
        "source": _party(call.source),
        "targets": [p for t in call.targets if (p := _party(t)) is not None],
        "result": _result(call.result_info),
        "farEndHungUp": _is_far_end_hang_up(call.result_info),
        "terminationReason": call.termination_reason,
        "tonesSubscribed": call.tones_subscribed,
        "promptS": call.prompt_s,
        "operations": [
            {
                "id": op.id,
                "kind": op.kind,
                "clientContext": op.client_context,
                "status": op.status,
                "completionReason": op.completion_reason,
                "result": _result(op.result_info),
                "time": iso_time(op.created_at),
            }
            for op in call.operations.values()
        ],
    }


def feed(
    cursor: Cursor | None,
    records: Sequence[RequestRecord],
    attempts: Sequence[DeliveryAttempt],
    calls: Iterable[Call],
) -> tuple[dict[str, Any], bool]:
    """What ``GET /_emulator/timeline?since=cursor`` answers, and whether it tells the client
    anything new (new events, changed calls, or a reset)."""
    stale = cursor is not None and is_stale(cursor, records, attempts)
    start = (0, 0) if cursor is None or stale else (cursor.requests, cursor.deliveries)
    events = [e for r in records[start[0] :] if (e := request_event(r)) is not None]
    events += [notification_event(a) for a in attempts[start[1] :]]
    events.sort(key=lambda e: e["at"])
    views = [call_view(c) for c in calls]
    checksum = zlib.crc32(msgspec.json.encode(views))
    after = Cursor(len(records), len(attempts), _first(records), _first(attempts), checksum)
    news = cursor is None or stale or bool(events) or checksum != cursor.calls
    body = {"cursor": str(after), "reset": stale, "events": events, "calls": views}
    return body, news
