"""The event log a configuration asks for: in memory (default) or a shared Redis stream (one
Redis, Sentinel or a Cluster)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from commsgw._config import Address
from commsgw.eventlog._base import EventLog
from commsgw.eventlog._memory import MemoryEventLog

if TYPE_CHECKING:
    from commsgw.eventlog._redis_connect import RedisTarget

MEMORY = "memory"
SENTINEL = "sentinel"


@dataclass(frozen=True, slots=True)
class EventLogConfig:
    """Which event log, and what it retains."""

    # "memory"; a redis://, rediss:// or unix:// URL; or "sentinel" (the primary found by
    # `sentinels`).
    url: str
    # The key prefix in Redis (the shared keepAlive registry's too).
    key: str
    max_events: int
    max_age_s: float
    sentinels: tuple[Address, ...]
    sentinel_service: str
    cluster: bool
    min_replicas: int
    replica_timeout_s: float

    @property
    def shared(self) -> bool:
        """Whether the log lives in Redis (shared by the replicas)."""
        return self.url != MEMORY


def redis_target(config: EventLogConfig) -> RedisTarget:
    """Where the shared Redis is: a URL, a cluster node or Sentinel's primary."""
    from commsgw.eventlog._redis_connect import RedisTarget  # redis is imported only when used

    if config.url == SENTINEL:
        return RedisTarget(
            sentinels=tuple((a.host, a.port) for a in config.sentinels),
            service=config.sentinel_service,
        )
    return RedisTarget(url=config.url, cluster=config.cluster)


def make_event_log(config: EventLogConfig) -> EventLog:
    if not config.shared:
        return MemoryEventLog(max_events=config.max_events, max_age_s=config.max_age_s)
    from commsgw.eventlog._redis import RedisEventLog  # redis is imported only when used

    return RedisEventLog(
        redis_target(config),
        key_prefix=config.key,
        max_events=config.max_events,
        max_age_s=config.max_age_s,
        min_replicas=config.min_replicas,
        replica_timeout_s=config.replica_timeout_s,
    )


async def probe_write(config: EventLogConfig, *, timeout_s: float) -> str:
    """Write (and delete) one short-lived key under the log's prefix, through the connection
    the log itself would make (URL, Sentinel's primary or Cluster); returns where it wrote.
    Raises EventLogUnavailable when the write is refused (a replica, no Redis, ...)."""
    from redis.exceptions import RedisError

    from commsgw._errors import EventLogUnavailable
    from commsgw.eventlog._redis_connect import connect, log_prefix

    target = redis_target(config)
    where = config.url if target.url else f"Sentinel service {target.service}"
    client = connect(target, socket_timeout=timeout_s)
    key = f"{log_prefix(target, config.key)}:probe:{uuid.uuid4().hex}"
    try:
        await client.set(key, "1", px=10_000)
        await client.delete(key)
    except RedisError as exc:
        raise EventLogUnavailable(f"{where}: {exc}") from exc
    finally:
        await client.aclose()
    return where
