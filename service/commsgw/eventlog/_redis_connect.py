"""Where the Redis event log connects: one Redis (a URL), the primary that Redis Sentinel names,
or a Redis Cluster (see "Deployments" in ``_redis``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

__all__ = ["RedisTarget", "connect", "log_prefix"]


@dataclass(frozen=True)
class RedisTarget:
    """One Redis or a cluster node (``url``), or a Sentinel-monitored primary (``sentinels``
    and ``service``)."""

    url: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = "mymaster"
    cluster: bool = False

    def __post_init__(self) -> None:
        if bool(self.url) == bool(self.sentinels):
            raise ValueError("a Redis target is a URL or a list of Sentinels, not both")
        if self.cluster and not self.url:
            raise ValueError("a Redis Cluster is reached through the URL of one of its nodes")

    @classmethod
    def of(cls, target: str | RedisTarget) -> RedisTarget:
        return target if isinstance(target, RedisTarget) else cls(url=target)


def log_prefix(target: RedisTarget, prefix: str) -> str:
    """The key prefix used: in a cluster, every key of the log must hash to one slot, so a
    prefix without a hash tag becomes one (``commsgw`` -> ``{commsgw}``)."""
    if not target.cluster:
        return prefix
    start = prefix.find("{")
    if start >= 0 and prefix.find("}", start + 1) > start + 1:
        return prefix  # already a non-empty hash tag: Redis hashes only what is inside
    return "{" + prefix + "}"


def connect(target: RedisTarget, **options: Any) -> aioredis.Redis:
    """A client of the target; `options` are redis-py connection options. A Sentinel client
    asks the Sentinels for the primary on every new connection, so after a failover (the old
    connection breaks or answers READONLY) it reconnects to the promoted one."""
    if target.sentinels:
        timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
        sentinels = list(target.sentinels)
        sentinel = Sentinel(sentinels, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
        client: aioredis.Redis = sentinel.master_for(target.service, **options)
        return client
    if target.cluster:
        options.pop("retry", None)  # the cluster client retries (and follows MOVED) itself
        cluster = RedisCluster.from_url(target.url, **options)
        return cast("aioredis.Redis", cluster)  # the log's commands are the same on both
    single: aioredis.Redis = aioredis.Redis.from_url(target.url, **options)
    return single
