"""Reading JSON values leniently: a value of the wrong type is "absent", numbers may come as
strings. Shared by the notification parser and the Graph client's answers."""

from __future__ import annotations

from typing import Any, Final

import msgspec

_SORTED: Final = msgspec.json.Encoder(order="sorted")
INT32: Final = (-(2**31), 2**31 - 1)
INT64: Final = (-(2**63), 2**63 - 1)


def text(value: Any) -> str:
    """A string field: strings as they are, numbers/booleans as their JSON text, anything else
    (null, objects, arrays) as ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        try:
            return _SORTED.encode(value).decode("ascii")
        except (msgspec.MsgspecError, ValueError, OverflowError):
            return ""
    return ""


def integer(value: Any, bounds: tuple[int, int] = INT32) -> int:
    """An integer field: ints, integral floats and numeric strings ("200", "200.0") within
    `bounds`; anything else is 0."""
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
    lo, hi = bounds
    return n if lo <= n <= hi else 0


def flag(value: Any) -> bool:
    """A boolean field: a JSON true; anything else is False."""
    return value is True


def obj(value: Any) -> dict[str, Any]:
    """An object field, {} when it is not one."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[dict[str, Any]]:
    """An array-of-objects field: its objects (other elements skipped), [] when not an array."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def get_ci(data: dict[str, Any], key: str) -> Any:
    """`data[key]`, else the value of a key equal to it in another case (Graph spells some keys
    several ways, e.g. subcode and subCode), else None."""
    if key in data:
        return data[key]
    lowered = key.lower()
    for k, v in data.items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return None
