"""Waiting for a condition to become true: poll it, never sleep for a guessed time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    ignoring: tuple[type[BaseException], ...] = (),
    what: str = "",
) -> T:
    """Call `predicate` (a plain or an async function) every `interval` seconds until it
    returns a true value, and return that value. An exception of one of the `ignoring` types
    counts as "not yet". After `timeout` seconds, fail with an AssertionError that names `what`
    (or the predicate) and its last result."""
    last: object = None
    try:
        async with asyncio.timeout(timeout) as deadline:
            while True:
                try:
                    value = predicate()
                    if inspect.isawaitable(value):
                        value = await value
                except ignoring as exc:
                    last = exc
                else:
                    if value:
                        return value  # type: ignore[return-value]
                    last = value
                await asyncio.sleep(interval)
    except TimeoutError:
        if not deadline.expired():
            raise
        name = what or getattr(predicate, "__qualname__", repr(predicate))
        raise AssertionError(f"not true within {timeout} s: {name} (last: {last!r})") from None
