"""Parse Graph's commsNotifications webhook bodies into contract Events.

Graph POSTs ``{"@odata.type": "#microsoft.graph.commsNotifications", "value": [...]}`` to the
bot's callback URL; each element of ``value`` is a commsNotification (``changeType``,
``resourceUrl`` or the legacy ``resource``, ``resourceData``). This module turns one body into
one :class:`ParsedNotification` per change, in the order Graph sent them: one per element, or
one per entity of an element whose resourceData is an array of changes (see below).

The element walk is here; the lenient field readings are in ``_fields``, the typed fields of a
call in ``_call_fields``, resourceUrl parsing and type names in ``_resources``, dedup keys in
``_dedup``.

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
* resourceData may be "an entity or a collection of entities depending on the number of
  changes packaged in the notification" (Graph's commsNotification resource). An array with at
  least one operation or call in it is split: one Event per entity, in order, each as if Graph
  had sent that change alone (the notification with resourceData replaced by the entity; an
  ``OtherNotification``'s ``raw_json`` is that notification, re-encoded). An array with neither
  (a roster update of participants, ``[]``) stays one ``OtherNotification``, exactly as sent.
* ``recordingAccessToken`` is copied into the Event (the subscriber side redacts it) but never
  appears in an exception message or a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from google.protobuf.timestamp_pb2 import Timestamp

from commsgw._errors import NotificationFormatError, NotificationTooLarge
from commsgw._graphjson import call_state, read_operation
from commsgw._ids import normalize_id
from commsgw.notifications._call_fields import fill_call_fields
from commsgw.notifications._dedup import dedup_key, element_digest
from commsgw.notifications._fields import as_str, json_type_name, set_result_info, timestamp
from commsgw.notifications._json import ANY_DECODER, DECODE_ERRORS, ENCODER
from commsgw.notifications._resources import (
    URL_CALL,
    URL_OPERATION,
    URL_OPERATIONS,
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


# Splitting a resourceData array copies the notification around each "other" entity into its
# raw_json. The copies made for one body may add up to the body's size plus this much: Graph's
# notifications have a few hundred bytes around resourceData, so only a body built to blow up
# in memory (a large envelope around many entities) gets near it.
_SPLIT_SLACK: Final = 256 * 1024


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
            notification Graph delivered twice, whatever its key order or whitespace. For an
            entity of a split array, the notification is the one-entity notification: a
            redelivered array gives the same keys, two different entities different ones, and
            an entity sent once packaged and once alone the same key.
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
        One ParsedNotification per element of ``value`` (per entity for a split
        resourceData array); ``[]`` for an empty ``value``.

    Raises:
        NotificationFormatError: the body is not valid UTF-8 JSON, not an object, has no
            ``value`` array, an element is not an object or has no ``resourceUrl``/``resource``
            string, or the JSON is nested too deeply.
        NotificationTooLarge: the raw_json of the "other" entities of split arrays would add
            up to more than the body's size plus 256 KiB (see ``_SPLIT_SLACK``).

    Classification of each element:

    * OperationUpdate: ``resourceData`` is an object whose ``@odata.type`` ends with
      "Operation" (any case, ``#microsoft.graph.`` prefix optional), or the URL is
      ``.../calls/{id}/operations/{opId}`` (unless resourceData says it is a call), or the
      URL is the collection ``.../calls/{id}/operations`` and resourceData a non-empty
      object. The operation id is resourceData's ``id``, else the URL's.
    * CallUpdate: resourceData's ``@odata.type`` is ``#microsoft.graph.call``, or the URL is
      exactly ``.../calls/{id}``. A call notification without resourceData (e.g. deleted)
      has state UNSPECIFIED. States are read in any case (the legacy format sends
      "Established"). Whatever the call resource carries of direction, source, targets,
      meetingInfo, chatInfo, requestedModalities, callbackUri and toneInfo is filled in; a
      call in state incoming also gets ``answer_deadline`` (see ``_call_fields``).
    * OtherNotification: everything else (participants, unknown types, resourceData that is
      not an object) and every notification whose call id is unknown. ``raw_json`` is the
      element exactly as Graph sent it.
    * resourceData an array: each entity is classified by its ``@odata.type`` as above, by
      the URL only when it has none (an entity that is not an object, or of another type, is
      "other"). When one is an operation or a call, the array is split into one
      Event per entity, in order; ``raw_json`` of an "other" entity is then the notification
      with resourceData replaced by that entity (keys in Graph's order, compact JSON). Else
      the array is kept whole as one OtherNotification (``odata_type`` "").

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
    budget = [len(body) + _SPLIT_SLACK]
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
        out.extend(_parse_element(index, element, raw_bytes, tenant, ts, budget))
    return out


@dataclass(slots=True)  # not frozen: a frozen dataclass is slower to build
class _Envelope:
    """What one commsNotification says around its resourceData."""

    tenant: str
    change_type: calls_pb2.ChangeType.ValueType
    url: str
    receive_time: Timestamp
    url_call_id: str
    url_kind: int
    url_op_id: str


@dataclass(slots=True)
class _Entity:
    """One entity of resourceData (or the whole resourceData) and what it is about."""

    kind: int  # URL_OPERATION, URL_CALL or URL_OTHER
    call_id: str
    odata_type: str
    type_name: str
    data: dict[str, Any]


def _classify(value: Any, usable: bool, env: _Envelope, *, element: bool = False) -> _Entity:
    """What `value` (resourceData, or with `element` one entity of an array) is; `usable`:
    whether typed fields can be read from it (an object, or absent resourceData). The URL
    decides for resourceData of another type or none, but for an entity only when it has no
    ``@odata.type`` (a participant in a call's array is a participant)."""
    data: dict[str, Any] = value if isinstance(value, dict) else {}
    t = data.get("@odata.type")
    odata_type = t if isinstance(t, str) else ""
    type_name = short_type_name(odata_type) if odata_type else ""
    call_id = env.url_call_id
    if not call_id and type_name == "call":
        call_id = normalize_id(as_str(data.get("id")))
    kind = URL_OTHER
    if call_id and usable:
        if type_name.endswith("operation"):
            kind = URL_OPERATION
        elif type_name == "call":
            kind = URL_CALL
        elif not (element and odata_type):  # the URL decides
            if env.url_kind == URL_OPERATION or (env.url_kind == URL_OPERATIONS and data):
                kind = URL_OPERATION
            elif env.url_kind == URL_CALL:
                kind = URL_CALL
    return _Entity(kind, call_id, odata_type, type_name, data)


def _parse_element(
    index: int,
    element: dict[str, Any],
    raw_bytes: bytes,
    tenant: str,
    ts: Timestamp,
    budget: list[int],
) -> list[ParsedNotification]:
    """The Events of one notification; `budget`: the bytes split arrays may still copy."""
    url = element.get("resourceUrl")
    if not isinstance(url, str) or not url.strip():
        url = element.get("resource")
        if not isinstance(url, str) or not url.strip():
            raise NotificationFormatError(
                f"notification value[{index}] has no resourceUrl (or resource) string"
            )
    change = element.get("changeType")
    change_type = (
        _CHANGE_TYPES.get(change.lower(), calls_pb2.CHANGE_TYPE_UNSPECIFIED)
        if isinstance(change, str)
        else calls_pb2.CHANGE_TYPE_UNSPECIFIED
    )
    env = _Envelope(tenant, change_type, url, ts, *parse_resource_url(url))

    rd = element.get("resourceData")
    if isinstance(rd, list):
        entities = [_classify(v, isinstance(v, dict), env, element=True) for v in rd]
        if any(e.kind != URL_OTHER for e in entities):
            out: list[ParsedNotification] = []
            for i, (value, entity) in enumerate(zip(rd, entities, strict=True)):
                # The notification as if Graph had sent this change alone (same key order).
                piece = {**element, "resourceData": value}
                digest = element_digest(tenant, piece, b"%s\x00[%d]" % (raw_bytes, i))
                raw_json = ""
                if entity.kind == URL_OTHER:
                    raw_json = ENCODER.encode(piece).decode("utf-8")
                    budget[0] -= len(raw_json)
                    if budget[0] < 0:
                        raise NotificationTooLarge(
                            f"notification value[{index}]: its resourceData array is too "
                            "large once split into one event per entity"
                        )
                out.append(_parsed(env, entity, piece, raw_json, digest))
            return out
        # Nothing typed in it (a roster update, content-sharing sessions, []): kept whole.
        entity = _Entity(URL_OTHER, env.url_call_id, "", "", {})
    else:
        entity = _classify(rd, rd is None or isinstance(rd, dict), env)
    digest = element_digest(tenant, element, raw_bytes)
    raw_json = raw_bytes.decode("utf-8") if entity.kind == URL_OTHER else ""
    return [_parsed(env, entity, element, raw_json, digest)]


def _parsed(
    env: _Envelope,
    entity: _Entity,
    notification: dict[str, Any],
    raw_json: str,
    digest: bytes,
) -> ParsedNotification:
    """The Event of one entity; `raw_json`: the notification's JSON, for an "other" one."""
    event = calls_pb2.Event(
        tenant_id=env.tenant,
        call_id=entity.call_id,
        change_type=env.change_type,
        resource_url=env.url,
        receive_time=env.receive_time,
    )
    data = entity.data
    operation_key: tuple[str, str, str] | None = None
    if entity.kind == URL_OPERATION:
        op = event.operation_update.operation
        op.CopyFrom(read_operation(data, entity.odata_type))
        op.odata_type = entity.odata_type
        op_id = op.id = op.id or env.url_op_id
        if op_id:
            operation_key = (env.tenant, entity.call_id, op_id)
    elif entity.kind == URL_CALL:
        cu = event.call_update
        cu.SetInParent()
        cu.state = call_state(data.get("state"))
        # Graph sent it (the log flags it stale, or as confirming an observed end, on storing).
        cu.origin = calls_pb2.CALL_UPDATE_ORIGIN_GRAPH
        cu.odata_type = entity.odata_type
        set_result_info(data.get("resultInfo"), cu.result_info)
        fill_call_fields(data, notification, cu, env.receive_time)
    else:
        other = event.other
        other.SetInParent()
        other.odata_type = entity.odata_type
        other.raw_json = raw_json
    return ParsedNotification(event=event, dedup_key=digest, operation_key=operation_key)
