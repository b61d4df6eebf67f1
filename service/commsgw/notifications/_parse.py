"""Parse Graph's commsNotifications webhook bodies into contract Events.

Graph POSTs ``{"@odata.type": "#microsoft.graph.commsNotifications", "value": [...]}`` to the
bot's callback URL; each element of ``value`` is a commsNotification (``changeType``,
``resourceUrl`` or the legacy ``resource``, ``resourceData``). This module turns one body into
one :class:`ParsedNotification` per element, in the order Graph sent them.

The element walk is here; the lenient field readings are in ``_fields``, resourceUrl parsing
and type names in ``_resources``, dedup keys in ``_dedup``.

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

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from google.protobuf.timestamp_pb2 import Timestamp

from commsgw._errors import NotificationFormatError
from commsgw._ids import normalize_id
from commsgw.notifications._dedup import dedup_key, element_digest
from commsgw.notifications._fields import as_str, json_type_name, set_result_info, timestamp
from commsgw.notifications._json import ANY_DECODER, DECODE_ERRORS
from commsgw.notifications._resources import (
    OPERATION_TYPES,
    URL_CALL,
    URL_OPERATION,
    URL_OTHER,
    parse_resource_url,
    short_type_name,
)
from graphcomms.v1 import calls_pb2

__all__ = [
    "ParsedNotification",
    "dedup_key",
    "normalize_id",
    "parse_notifications",
]

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


class _Document(msgspec.Struct):
    """A commsNotifications document; every element is kept as the exact bytes Graph sent."""

    value: list[msgspec.Raw]


_DOCUMENT_DECODER: Final = msgspec.json.Decoder(_Document)


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
    except DECODE_ERRORS as e:
        raise NotificationFormatError(f"notification body is not valid JSON: {e}") from None

    if not doc.value:
        return []

    tenant = normalize_id(tenant_id)
    ts = timestamp(datetime.now(UTC) if receive_time is None else receive_time)

    out: list[ParsedNotification] = []
    for index, raw in enumerate(doc.value):
        raw_bytes = bytes(raw)
        try:
            element = ANY_DECODER.decode(raw_bytes)
        except RecursionError:
            raise NotificationFormatError(
                f"notification value[{index}] is nested too deeply"
            ) from None
        except DECODE_ERRORS as e:
            raise NotificationFormatError(
                f"notification value[{index}] is not valid JSON: {e}"
            ) from None
        if not isinstance(element, dict):
            raise NotificationFormatError(
                f"notification value[{index}] is not an object (got {json_type_name(element)})"
            )
        out.append(_parse_element(index, element, raw_bytes, tenant, ts))
    return out


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

    digest = element_digest(tenant, element, raw_bytes)

    change = element.get("changeType")
    change_type = (
        _CHANGE_TYPES.get(change.lower(), calls_pb2.CHANGE_TYPE_UNSPECIFIED)
        if isinstance(change, str)
        else calls_pb2.CHANGE_TYPE_UNSPECIFIED
    )

    url_call_id, url_kind, url_op_id = parse_resource_url(url)

    rd = element.get("resourceData")
    rd_obj: dict[str, Any] | None = rd if isinstance(rd, dict) else None
    odata_type = ""
    type_name = ""
    if rd_obj is not None:
        t = rd_obj.get("@odata.type")
        if isinstance(t, str):
            odata_type = t
            type_name = short_type_name(t)

    call_id = url_call_id
    if not call_id and type_name == "call":
        call_id = normalize_id(as_str(rd_obj.get("id") if rd_obj is not None else None))

    # resourceData given but not an object (a participants list, a scalar): nothing typed
    # can be read from it, keep it whole.
    resource_data_usable = rd is None or rd_obj is not None
    kind = URL_OTHER
    if call_id and resource_data_usable:
        if type_name.endswith("operation"):
            kind = URL_OPERATION
        elif type_name == "call":
            kind = URL_CALL
        elif url_kind == URL_OPERATION:
            kind = URL_OPERATION
        elif url_kind == URL_CALL:
            kind = URL_CALL

    event = calls_pb2.Event(
        tenant_id=tenant,
        call_id=call_id,
        change_type=change_type,
        resource_url=url,
        receive_time=ts,
    )
    operation_key: tuple[str, str, str] | None = None

    if kind == URL_OPERATION:
        data = rd_obj if rd_obj is not None else {}
        op_id = as_str(data.get("id"))
        op_id = normalize_id(op_id) if op_id.strip() else url_op_id
        status = data.get("status")
        op = event.operation_update.operation
        op.SetInParent()
        op.id = op_id
        op.type = OPERATION_TYPES.get(type_name, calls_pb2.OPERATION_TYPE_UNSPECIFIED)
        op.status = (
            _OPERATION_STATUSES.get(status.lower(), calls_pb2.OPERATION_STATUS_UNSPECIFIED)
            if isinstance(status, str)
            else calls_pb2.OPERATION_STATUS_UNSPECIFIED
        )
        op.client_context = as_str(data.get("clientContext"))
        op.odata_type = odata_type
        op.completion_reason = as_str(data.get("completionReason"))
        op.recording_location = as_str(data.get("recordingLocation"))
        op.recording_access_token = as_str(data.get("recordingAccessToken"))
        set_result_info(data.get("resultInfo"), op.result_info)
        if op_id:
            operation_key = (tenant, call_id, op_id)
    elif kind == URL_CALL:
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
        set_result_info(data.get("resultInfo"), cu.result_info)
    else:
        other = event.other
        other.SetInParent()
        other.odata_type = odata_type
        other.raw_json = raw_bytes.decode("utf-8")

    return ParsedNotification(event=event, dedup_key=digest, operation_key=operation_key)
