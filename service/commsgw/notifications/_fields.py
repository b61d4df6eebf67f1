"""The lenient reading of a notification's fields, and the receive timestamp.

A field of the wrong JSON type is treated as absent: strings accept numbers and booleans
(converted to their JSON text), integers that are not integral numbers within their range
become 0, booleans are only JSON booleans. Also the JSON type names used in error messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from google.protobuf.timestamp_pb2 import Timestamp

from commsgw._graphjson import INT32, INT64, flag, integer, read_result_info, text
from graphcomms.v1 import calls_pb2

__all__ = [
    "as_bool",
    "as_int32",
    "as_int64",
    "as_str",
    "json_type_name",
    "set_result_info",
    "timestamp",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(when: datetime) -> Timestamp:
    """`Timestamp.FromDatetime` in integer arithmetic (half its cost, the same result);
    a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def as_str(value: Any) -> str:
    """:func:`commsgw._graphjson._lenient.text`."""
    return text(value)


def as_int32(value: Any) -> int:
    """A result code as int32 (:func:`commsgw._graphjson._lenient.integer`)."""
    return integer(value, INT32)


def as_int64(value: Any) -> int:
    """:func:`as_int32` for int64 (a tone's sequenceId)."""
    return integer(value, INT64)


def as_bool(value: Any) -> bool:
    """A JSON boolean; anything else is False."""
    return flag(value)


def set_result_info(value: Any, target: calls_pb2.ResultInfo) -> None:
    """Graph's resultInfo (:func:`commsgw._graphjson.read_result_info`: `subCode` too)."""
    read_result_info(value, target)


def json_type_name(value: Any) -> str:
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
