"""Parse Graph's commsNotifications webhook bodies into contract Events.

Graph POSTs ``{"@odata.type": "#microsoft.graph.commsNotifications", "value": [...]}`` to the
bot's callback URL; each element of ``value`` is a commsNotification (``changeType``,
``resourceUrl`` or the legacy ``resource``, ``resourceData``). This module turns one body into
one :class:`ParsedNotification` per element, in the order Graph sent them.

Rules (details in :func:`parse_notifications`):

* The body must be a JSON object whose ``value`` is an array of objects, each with a
  non-empty ``resourceUrl`` (or ``resource``) string; anything else raises
  :class:`~commsgw._errors.NotificationFormatError` (the webhook answers 400). The document's
  own ``@odata.type`` is not checked.
* Inside an element parsing is lenient: a field of the wrong JSON type is treated as absent
  (strings accept numbers and booleans, converted to their JSON text), result codes that are
  not integral numbers within int32 become 0, unknown enum values become UNSPECIFIED.
* Nothing Graph sent is dropped: what is neither an operation nor a call, and every
  notification whose call id cannot be determined (``call_id`` then is ""), becomes an
  ``OtherNotification`` carrying the element exactly as sent.
* ``recordingAccessToken`` is copied into the Event (the subscriber side redacts it) but never
  appears in an exception message or a log line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import msgspec
from google.protobuf.timestamp_pb2 import Timestamp

from commsgw._errors import NotificationFormatError
from commsgw._ids import normalize_id
from graphcomms.v1 import calls_pb2

__all__ = [
    "ParsedNotification",
    "dedup_key",
    "normalize_id",
    "parse_notifications",
]

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_DEDUP_DIGEST_SIZE: Final = 16
_CACHE_MAX_LEN: Final = 512
_DEDUP_PERSON: Final = b"commsgw-notif-v1"
# Prefix of content hashed as raw bytes (not re-encodable); cannot start canonical JSON.
_RAW_MARK: Final = b"\x00raw\x00"

_CHANGE_TYPES: Final[dict[str, calls_pb2.ChangeType.ValueType]] = {
    "created": calls_pb2.CHANGE_TYPE_CREATED,
    "updated": calls_pb2.CHANGE_TYPE_UPDATED,
    "deleted": calls_pb2.CHANGE_TYPE_DELETED,
}

_OPERATION_STATUSES: Final[dict[str, calls_pb2.OperationStatus.ValueType]] = {
    "notstarted": calls_pb2.OPERATION_STATUS_NOT_STARTED,
    "running": calls_pb2.OPERATION_STATUS_RUNNING,
    "completed": calls_pb2.OPERATION_STATUS_COMPLETED,
    "failed": calls_pb2.OPERATION_STATUS_FAILED,
}

# Keys are the lower-cased @odata.type without "#" and without the "microsoft.graph." prefix.
_OPERATION_TYPES: Final[dict[str, calls_pb2.OperationType.ValueType]] = {
    "addlargegalleryviewoperation": calls_pb2.OPERATION_TYPE_ADD_LARGE_GALLERY_VIEW,
    "cancelmediaprocessingoperation": calls_pb2.OPERATION_TYPE_CANCEL_MEDIA_PROCESSING,
    "inviteparticipantsoperation": calls_pb2.OPERATION_TYPE_INVITE_PARTICIPANTS,
    "muteparticipantoperation": calls_pb2.OPERATION_TYPE_MUTE_PARTICIPANT,
    "playpromptoperation": calls_pb2.OPERATION_TYPE_PLAY_PROMPT,
    "recordoperation": calls_pb2.OPERATION_TYPE_RECORD,
    "senddtmftonesoperation": calls_pb2.OPERATION_TYPE_SEND_DTMF_TONES,
    "startholdmusicoperation": calls_pb2.OPERATION_TYPE_START_HOLD_MUSIC,
    "stopholdmusicoperation": calls_pb2.OPERATION_TYPE_STOP_HOLD_MUSIC,
    "subscribetotoneoperation": calls_pb2.OPERATION_TYPE_SUBSCRIBE_TO_TONE,
    "unmuteparticipantoperation": calls_pb2.OPERATION_TYPE_UNMUTE_PARTICIPANT,
    "updaterecordingstatusoperation": calls_pb2.OPERATION_TYPE_UPDATE_RECORDING_STATUS,
}

_CALL_STATES: Final[dict[str, calls_pb2.CallState.ValueType]] = {
    "incoming": calls_pb2.CALL_STATE_INCOMING,
    "establishing": calls_pb2.CALL_STATE_ESTABLISHING,
    "established": calls_pb2.CALL_STATE_ESTABLISHED,
    "hold": calls_pb2.CALL_STATE_HOLD,
    "transferring": calls_pb2.CALL_STATE_TRANSFERRING,
    "transferaccepted": calls_pb2.CALL_STATE_TRANSFER_ACCEPTED,
    "redirecting": calls_pb2.CALL_STATE_REDIRECTING,
    "terminating": calls_pb2.CALL_STATE_TERMINATING,
    "terminated": calls_pb2.CALL_STATE_TERMINATED,
}

# What a resourceUrl points at (after the calls segment).
_URL_OTHER: Final = 0
_URL_CALL: Final = 1
_URL_OPERATION: Final = 2


class _Document(msgspec.Struct):
    """A commsNotifications document; every element is kept as the exact bytes Graph sent."""

    value: list[msgspec.Raw]


_DOCUMENT_DECODER: Final = msgspec.json.Decoder(_Document)
_ANY_DECODER: Final = msgspec.json.Decoder()
_SORTED_ENCODER: Final = msgspec.json.Encoder(order="sorted")

# Errors msgspec raises on bad input: DecodeError/ValidationError, UnicodeDecodeError (a
# ValueError) for invalid UTF-8 inside strings, RecursionError for too-deep nesting.
_DECODE_ERRORS: Final = (msgspec.MsgspecError, ValueError, RecursionError)


@dataclass(frozen=True, slots=True)
class ParsedNotification:
    """One commsNotification of a webhook body, ready to publish.

    Attributes:
        event: the contract Event.
        dedup_key: a 16-byte digest of (tenant, canonical notification JSON); equal for a
            notification Graph delivered twice, whatever its key order or whitespace.
        operation_key: ``(tenant_id, call_id, operation_id)`` for an operation update with
            both ids known (the key of the latest-state snapshot); None otherwise.
    """

    event: calls_pb2.Event
    dedup_key: bytes
    operation_key: tuple[str, str, str] | None


def dedup_key(tenant_id: str, notification_json: bytes | bytearray | memoryview | Any) -> bytes:
    """A stable 16-byte digest of a notification's content and its tenant.

    ``notification_json`` is either the notification's JSON text (bytes-like) or the decoded
    JSON value. The digest covers the canonical JSON (object keys sorted at every level, no
    whitespace), so the same notification delivered twice gives the same key even when Graph
    serialised it differently. The tenant is normalised like :func:`parse_notifications`
    does, so ``dedup_key(tenant, element_json)`` equals ``ParsedNotification.dedup_key``.
    Bytes that are not valid JSON (or nested too deeply to re-encode) are hashed as they are.
    """
    tenant = normalize_id(tenant_id)
    if isinstance(notification_json, bytes | bytearray | memoryview):
        raw = bytes(notification_json)
        try:
            canonical = _SORTED_ENCODER.encode(_ANY_DECODER.decode(raw))
        except _DECODE_ERRORS:
            canonical = _RAW_MARK + raw
        return _digest(tenant, canonical)
    return _digest(tenant, _canonical(notification_json))


def _digest(tenant: str, canonical: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=_DEDUP_DIGEST_SIZE, person=_DEDUP_PERSON)
    tb = tenant.encode("utf-8", "surrogatepass")
    h.update(len(tb).to_bytes(4, "big"))
    h.update(tb)
    h.update(canonical)
    return h.digest()


def _canonical(value: Any) -> bytes:
    try:
        return _SORTED_ENCODER.encode(value)
    except (msgspec.MsgspecError, TypeError, ValueError, RecursionError, OverflowError) as e:
        raise TypeError(f"notification is not a JSON value: {type(e).__name__}") from None


def parse_notifications(
    body: bytes | bytearray | memoryview,
    *,
    tenant_id: str,
    receive_time: datetime | None = None,
) -> list[ParsedNotification]:
    """Parse one webhook body (a commsNotifications document) into Events, in Graph's order.

    Args:
        body: the raw request body.
        tenant_id: the tenant the notifications belong to (the token's ``tid``); normalised
            with :func:`normalize_id` and stamped on every Event.
        receive_time: when the webhook received the body; now (UTC) when None. A naive
            datetime is taken as UTC.

    Returns:
        One ParsedNotification per element of ``value``; ``[]`` for an empty ``value``.

    Raises:
        NotificationFormatError: the body is not valid UTF-8 JSON, not an object, has no
            ``value`` array, an element is not an object or has no ``resourceUrl``/``resource``
            string, or the JSON is nested too deeply.

    Classification of each element:

    * OperationUpdate: ``resourceData`` is an object whose ``@odata.type`` ends with
      "Operation" (any case, ``#microsoft.graph.`` prefix optional), or the URL is
      ``.../calls/{id}/operations/{opId}`` (unless resourceData says it is a call). The
      operation id is resourceData's ``id``, else the URL's.
    * CallUpdate: resourceData's ``@odata.type`` is ``#microsoft.graph.call``, or the URL is
      exactly ``.../calls/{id}``. A call notification without resourceData (e.g. deleted)
      has state UNSPECIFIED.
    * OtherNotification: everything else (participants, unknown types, resourceData that is
      not an object) and every notification whose call id is unknown. ``raw_json`` is the
      element exactly as Graph sent it.

    The call id comes from the URL's segment after ``calls`` (absolute URLs, ``/v1.0`` or
    ``/beta`` prefixes, ``/app/calls``, trailing slashes, query strings and any case are
    tolerated), else from resourceData's ``id`` when resourceData is a call; it is normalised
    with :func:`normalize_id`. Without one the notification is an OtherNotification with
    ``call_id`` "".
    """
    if not isinstance(body, bytes):
        body = bytes(body)
    # msgspec does not check UTF-8 in parts it skips (Raw elements are re-decoded below, but
    # unknown top-level keys are not), so check the whole body once; isascii() is the fast path.
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NotificationFormatError(
                f"notification body is not valid UTF-8 (byte {e.start})"
            ) from None
    try:
        doc = _DOCUMENT_DECODER.decode(body)
    except RecursionError:
        raise NotificationFormatError("notification body is nested too deeply") from None
    except msgspec.ValidationError as e:
        raise NotificationFormatError(
            f"notification body is not a commsNotifications document: {e}"
        ) from None
    except _DECODE_ERRORS as e:
        raise NotificationFormatError(f"notification body is not valid JSON: {e}") from None

    if not doc.value:
        return []

    tenant = normalize_id(tenant_id)
    ts = _timestamp(datetime.now(UTC) if receive_time is None else receive_time)

    out: list[ParsedNotification] = []
    for index, raw in enumerate(doc.value):
        raw_bytes = bytes(raw)
        try:
            element = _ANY_DECODER.decode(raw_bytes)
        except RecursionError:
            raise NotificationFormatError(
                f"notification value[{index}] is nested too deeply"
            ) from None
        except _DECODE_ERRORS as e:
            raise NotificationFormatError(
                f"notification value[{index}] is not valid JSON: {e}"
            ) from None
        if not isinstance(element, dict):
            raise NotificationFormatError(
                f"notification value[{index}] is not an object (got {_json_type_name(element)})"
            )
        out.append(_parse_element(index, element, raw_bytes, tenant, ts))
    return out


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(when: datetime) -> Timestamp:
    """`Timestamp.FromDatetime` in integer arithmetic (half its cost, the same result);
    a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def _parse_element(
    index: int, element: dict[str, Any], raw_bytes: bytes, tenant: str, ts: Timestamp
) -> ParsedNotification:
    url = element.get("resourceUrl")
    if not isinstance(url, str) or not url.strip():
        url = element.get("resource")
        if not isinstance(url, str) or not url.strip():
            raise NotificationFormatError(
                f"notification value[{index}] has no resourceUrl (or resource) string"
            )

    try:
        canonical = _SORTED_ENCODER.encode(element)
    except (msgspec.MsgspecError, RecursionError, ValueError, TypeError, OverflowError):
        canonical = _RAW_MARK + raw_bytes
    digest = _digest(tenant, canonical)

    change = element.get("changeType")
    change_type = (
        _CHANGE_TYPES.get(change.lower(), calls_pb2.CHANGE_TYPE_UNSPECIFIED)
        if isinstance(change, str)
        else calls_pb2.CHANGE_TYPE_UNSPECIFIED
    )

    url_call_id, url_kind, url_op_id = (
        _parse_resource_url_cached(url) if len(url) <= _CACHE_MAX_LEN else _parse_resource_url(url)
    )

    rd = element.get("resourceData")
    rd_obj: dict[str, Any] | None = rd if isinstance(rd, dict) else None
    odata_type = ""
    type_name = ""
    if rd_obj is not None:
        t = rd_obj.get("@odata.type")
        if isinstance(t, str):
            odata_type = t
            type_name = _type_name(t)

    call_id = url_call_id
    if not call_id and type_name == "call":
        call_id = normalize_id(_as_str(rd_obj.get("id") if rd_obj is not None else None))

    # resourceData given but not an object (a participants list, a scalar): nothing typed
    # can be read from it, keep it whole.
    resource_data_usable = rd is None or rd_obj is not None
    kind = _URL_OTHER
    if call_id and resource_data_usable:
        if type_name.endswith("operation"):
            kind = _URL_OPERATION
        elif type_name == "call":
            kind = _URL_CALL
        elif url_kind == _URL_OPERATION:
            kind = _URL_OPERATION
        elif url_kind == _URL_CALL:
            kind = _URL_CALL

    event = calls_pb2.Event(
        tenant_id=tenant,
        call_id=call_id,
        change_type=change_type,
        resource_url=url,
        receive_time=ts,
    )
    operation_key: tuple[str, str, str] | None = None

    if kind == _URL_OPERATION:
        data = rd_obj if rd_obj is not None else {}
        op_id = _as_str(data.get("id"))
        op_id = normalize_id(op_id) if op_id.strip() else url_op_id
        status = data.get("status")
        op = event.operation_update.operation
        op.SetInParent()
        op.id = op_id
        op.type = _OPERATION_TYPES.get(type_name, calls_pb2.OPERATION_TYPE_UNSPECIFIED)
        op.status = (
            _OPERATION_STATUSES.get(status.lower(), calls_pb2.OPERATION_STATUS_UNSPECIFIED)
            if isinstance(status, str)
            else calls_pb2.OPERATION_STATUS_UNSPECIFIED
        )
        op.client_context = _as_str(data.get("clientContext"))
        op.odata_type = odata_type
        op.completion_reason = _as_str(data.get("completionReason"))
        op.recording_location = _as_str(data.get("recordingLocation"))
        op.recording_access_token = _as_str(data.get("recordingAccessToken"))
        _set_result_info(data.get("resultInfo"), op.result_info)
        if op_id:
            operation_key = (tenant, call_id, op_id)
    elif kind == _URL_CALL:
        data = rd_obj if rd_obj is not None else {}
        state = data.get("state")
        cu = event.call_update
        cu.SetInParent()
        cu.state = (
            _CALL_STATES.get(state.lower(), calls_pb2.CALL_STATE_UNSPECIFIED)
            if isinstance(state, str)
            else calls_pb2.CALL_STATE_UNSPECIFIED
        )
        cu.odata_type = odata_type
        _set_result_info(data.get("resultInfo"), cu.result_info)
    else:
        other = event.other
        other.SetInParent()
        other.odata_type = odata_type
        other.raw_json = raw_bytes.decode("utf-8")

    return ParsedNotification(event=event, dedup_key=digest, operation_key=operation_key)


def _type_name(odata_type: str) -> str:
    """``#microsoft.graph.recordOperation`` -> ``recordoperation`` (prefix optional)."""
    t = odata_type.strip().lower()
    if t.startswith("#"):
        t = t[1:]
    if t.startswith("microsoft.graph."):
        t = t[16:]
    return t


def _parse_resource_url(url: str) -> tuple[str, int, str]:
    """Return (call id, what the URL points at, operation id) from a resourceUrl.

    Ids are normalised; a URL without a ``calls/{id}`` part gives ("", _URL_OTHER, "").
    """
    u = url.strip()
    cut = len(u)
    for sep in ("?", "#"):
        i = u.find(sep)
        if 0 <= i < cut:
            cut = i
    u = u[:cut]
    scheme = u.find("://")
    if scheme >= 0:
        slash = u.find("/", scheme + 3)
        u = u[slash:] if slash >= 0 else ""
    segments = [s for s in u.split("/") if s]
    for i, seg in enumerate(segments):
        if seg.lower() == "calls" and i + 1 < len(segments):
            call_id = normalize_id(segments[i + 1])
            if not call_id:
                return "", _URL_OTHER, ""
            rest = segments[i + 2 :]
            if not rest:
                return call_id, _URL_CALL, ""
            if len(rest) == 2 and rest[0].lower() == "operations":
                return call_id, _URL_OPERATION, normalize_id(rest[1])
            return call_id, _URL_OTHER, ""
    return "", _URL_OTHER, ""


# Graph repeats the same call (and operation) URLs many times: memoise short ones.
_parse_resource_url_cached: Final = lru_cache(maxsize=4096)(_parse_resource_url)


def _as_str(value: Any) -> str:
    """A JSON value as a string field: strings as they are, numbers/booleans as JSON text,
    anything else (null, objects, arrays) as ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        try:
            return _SORTED_ENCODER.encode(value).decode("ascii")
        except (msgspec.MsgspecError, ValueError, OverflowError):
            return ""
    return ""


def _as_int32(value: Any) -> int:
    """A result code as int32: ints, integral floats and numeric strings ("200", "200.0")
    within int32; anything else is 0."""
    if isinstance(value, bool):
        return 0
    n: int
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if not value.is_integer():
            return 0
        n = int(value)
    elif isinstance(value, str):
        s = value.strip()
        if len(s) > 32:
            return 0
        try:
            n = int(s)
        except ValueError:
            try:
                f = float(s)
            except ValueError:
                return 0
            if not f.is_integer():
                return 0
            n = int(f)
    else:
        return 0
    return n if _INT32_MIN <= n <= _INT32_MAX else 0


def _set_result_info(value: Any, target: calls_pb2.ResultInfo) -> None:
    if not isinstance(value, dict):
        return
    target.SetInParent()
    target.code = _as_int32(value.get("code"))
    target.subcode = _as_int32(value.get("subcode"))
    target.message = _as_str(value.get("message"))


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
