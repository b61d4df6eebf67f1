"""The closing flag of a watch, one per client flavour: ``close()`` sets it, and the watch's
backoff waits on it so that a close ends the wait at once. ``_aio.py`` uses :class:`AsyncFlag`;
the generated ``_sync.py`` uses :class:`Flag` (``threading.Event``: set from any thread)."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class AsyncFlag:
    """A flag an asyncio task waits on with a timeout."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float) -> bool:
        """Wait until the flag is set or `timeout` seconds passed; whether it is set."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return self._event.is_set()


class Flag(threading.Event):
    """The blocking twin of :class:`AsyncFlag`."""
