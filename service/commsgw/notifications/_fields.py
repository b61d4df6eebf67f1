"""The lenient reading of a notification's fields, and the receive timestamp.

A field of the wrong JSON type is treated as absent: strings accept numbers and booleans
(converted to their JSON text), integers that are not integral numbers within their range
become 0, booleans are only JSON booleans. Also the JSON type names used in error messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from google.protobuf.timestamp_pb2 import Timestamp

from commsgw.notifications._json import SORTED_ENCODER
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

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(when: datetime) -> Timestamp:
    """`Timestamp.FromDatetime` in integer arithmetic (half its cost, the same result);
    a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def as_str(value: Any) -> str:
    """A JSON value as a string field: strings as they are, numbers/booleans as JSON text,
    anything else (null, objects, arrays) as ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        try:
            return SORTED_ENCODER.encode(value).decode("ascii")
        except (msgspec.MsgspecError, ValueError, OverflowError):
            return ""
    return ""


def as_int32(value: Any) -> int:
    """A result code as int32: ints, integral floats and numeric strings ("200", "200.0")
    within int32; anything else is 0."""
    return _as_int(value, _INT32_MIN, _INT32_MAX)


def as_int64(value: Any) -> int:
    """:func:`as_int32` for int64 (a tone's sequenceId)."""
    return _as_int(value, _INT64_MIN, _INT64_MAX)


def as_bool(value: Any) -> bool:
    """A JSON boolean; anything else is False."""
    return value is True


def _as_int(value: Any, lo: int, hi: int) -> int:
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
    return n if lo <= n <= hi else 0


def set_result_info(value: Any, target: calls_pb2.ResultInfo) -> None:
    if not isinstance(value, dict):
        return
    target.SetInParent()
    target.code = as_int32(value.get("code"))
    target.subcode = as_int32(value.get("subcode"))
    target.message = as_str(value.get("message"))


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
