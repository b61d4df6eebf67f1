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

    def ended_by_close(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised in the task iterating the watch, is the close of its stream
        (a ``close()`` from another task cancels the call, and grpc.aio raises CancelledError
        in the reader) rather than a cancellation of that task itself."""
        task = asyncio.current_task()
        return (
            self.is_set()
            and isinstance(exc, asyncio.CancelledError)
            and (task is None or task.cancelling() == 0)
        )


class Flag(threading.Event):
    """The blocking twin of :class:`AsyncFlag`."""

    def ended_by_close(self, exc: BaseException) -> bool:
        """Never: a blocking stream closed from another thread ends with CANCELLED, not with an
        exception of its own."""
        return False
