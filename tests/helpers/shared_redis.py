"""The machine's Redis (127.0.0.1:6379) shared by the tests: each test uses keys under a prefix
of its own and drops them afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

SHARED_REDIS = "redis://127.0.0.1:6379/0"


async def drop_keys(prefix: str, url: str = SHARED_REDIS) -> None:
    """Delete every key starting with `prefix`."""
    r = aioredis.from_url(url)
    try:
        keys = [k async for k in r.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()


@contextlib.asynccontextmanager
async def key_prefix(name: str) -> AsyncIterator[str]:
    """A fresh key prefix for one test, its keys dropped at the end."""
    prefix = f"commsgw-test-{name}-{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        await drop_keys(prefix)
