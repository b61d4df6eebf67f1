"""The keepAlive registry on Redis, shared by the replicas (see `_registry` for the keys)."""

from __future__ import annotations

import importlib.resources
import logging
import uuid

from redis.exceptions import RedisError

from commsgw.eventlog import RedisTarget, connect, log_prefix
from commsgw.keepalive._registry import Registry

log = logging.getLogger("commsgw.keepalive")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisRegistry(Registry):
    def __init__(self, target: str | RedisTarget, *, key_prefix: str) -> None:
        target = RedisTarget.of(target)
        key_prefix = log_prefix(target, key_prefix)  # the event log's (one slot in a cluster)
        self._client = connect(target, socket_timeout=5, socket_connect_timeout=5)
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
