"""The body-subset match of request verification and of delivery faults (pure)."""

from __future__ import annotations

from typing import Any


def body_matches(pattern: Any, actual: Any) -> bool:
    """``pattern`` is a subset of ``actual``: an object's keys all present with matching
    values (recursively), each element of an array matching some element of the actual array,
    any other value equal (a bool is not a number)."""
    if isinstance(pattern, dict):
        return isinstance(actual, dict) and all(
            k in actual and body_matches(v, actual[k]) for k, v in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(actual, list) and all(
            any(body_matches(p, a) for a in actual) for p in pattern
        )
    if isinstance(pattern, bool) or isinstance(actual, bool):
        return pattern is actual
    if isinstance(pattern, int | float) and isinstance(actual, int | float):
        return pattern == actual
    return type(pattern) is type(actual) and pattern == actual
