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
import importlib.resources
import logging
import uuid

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("commsgw.keepalive")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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


class RedisRegistry(Registry):
    def __init__(self, url: str, *, key_prefix: str) -> None:
        self._client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._calls_key = f"{key_prefix}:keepalive:calls"
        self._lease_prefix = f"{key_prefix}:keepalive:lease:"
        self._me = uuid.uuid4().hex
        script = (importlib.resources.files("commsgw.keepalive") / "lua" / "release.lua").read_text(
            encoding="utf-8"
        )
        self._release = self._client.register_script(script)

    async def add(self, call_id: str, tenant_id: str) -> None:
        await self._client.hset(self._calls_key, call_id, tenant_id)

    async def remove(self, call_id: str) -> None:
        await self._client.hdel(self._calls_key, call_id)

    async def calls(self) -> dict[str, str]:
        raw = await self._client.hgetall(self._calls_key)
        return {_text(k): _text(v) for k, v in raw.items()}

    async def lease(self, call_id: str, period_s: float) -> bool:
        ms = max(1, int(period_s * 1000))
        won = await self._client.set(self._lease_prefix + call_id, self._me, nx=True, px=ms)
        return bool(won)

    async def release(self, call_id: str) -> None:
        try:
            await self._release(keys=[self._lease_prefix + call_id], args=[self._me])
        except RedisError as exc:  # the lease then simply runs out
            log.info("could not release the keepAlive lease of %s: %s", call_id, exc)

    async def close(self) -> None:
        await self._client.aclose()
