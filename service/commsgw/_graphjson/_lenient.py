"""Reading JSON values leniently: the wrong type is "absent", numbers may come as strings."""

from __future__ import annotations

import json
from typing import Any, Final

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1


def text(value: Any) -> str:
    """A string field: strings as they are, numbers/booleans as their JSON text, else ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        try:
            return json.dumps(value, allow_nan=False)
        except (ValueError, OverflowError):
            return ""
    return ""


def integer(value: Any, lo: int = _INT32_MIN, hi: int = _INT32_MAX) -> int:
    """An integer field: ints, integral floats and numeric strings ("200") within [lo, hi];
    anything else is 0."""
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
            except (ValueError, OverflowError):
                return 0
            if not f.is_integer():
                return 0
            n = int(f)
    else:
        return 0
    return n if lo <= n <= hi else 0


def flag(value: Any) -> bool:
    """A boolean field: true only for JSON true (and the string "true", any case)."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def obj(value: Any) -> dict[str, Any]:
    """An object field, {} when it is not one."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[dict[str, Any]]:
    """An array-of-objects field: its objects (other elements skipped), [] when not an array."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def get_ci(data: dict[str, Any], key: str) -> Any:
    """`data[key]`, else the value of a key equal to it in another case (Graph spells some keys
    several ways), else None."""
    if key in data:
        return data[key]
    lowered = key.lower()
    for k, v in data.items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return None
