"""Where the calls kept alive are recorded, and who sends a call's next keepAlive.

In memory (one replica) the registry is a dict and every lease is won. On Redis, the calls are
a hash `P:keepalive:calls` (call id -> tenant) shared by the replicas, and a period's lease is
`SET P:keepalive:lease:<call> <replica> NX PX <period>`: the replica that sets it sends the
keepAlive; the others skip that period. A replica that dies holding a lease leaves the call one
period without keepAlive at most: the next period's lease is free again (two periods are 30
minutes by default, well inside Graph's 45).
"""

from __future__ import annotations

import abc


class Registry(abc.ABC):
    @abc.abstractmethod
    async def add(self, call_id: str, tenant_id: str) -> None: ...

    @abc.abstractmethod
    async def remove(self, call_id: str) -> None: ...

    @abc.abstractmethod
    async def calls(self) -> dict[str, str]:
        """Every call kept alive: call id -> tenant."""

    @abc.abstractmethod
    async def lease(self, call_id: str, period_s: float) -> bool:
        """Whether this replica sends the call's keepAlive for the period starting now."""

    @abc.abstractmethod
    async def release(self, call_id: str) -> None:
        """Give the period's lease back (the keepAlive failed: another replica may retry)."""

    async def close(self) -> None:
        return None


class MemoryRegistry(Registry):
    def __init__(self) -> None:
        self._calls: dict[str, str] = {}

    async def add(self, call_id: str, tenant_id: str) -> None:
        self._calls[call_id] = tenant_id

    async def remove(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    async def calls(self) -> dict[str, str]:
        return dict(self._calls)

    async def lease(self, call_id: str, period_s: float) -> bool:
        return True

    async def release(self, call_id: str) -> None:
        return None
