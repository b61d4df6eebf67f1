"""The event log the settings ask for: in memory (default) or a shared Redis stream (one Redis,
Sentinel or a Cluster)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from commsgw._config import Settings
from commsgw.eventlog._base import EventLog
from commsgw.eventlog._memory import MemoryEventLog

if TYPE_CHECKING:
    from commsgw.eventlog._redis_connect import RedisTarget


def redis_target(settings: Settings) -> RedisTarget:
    """Where the settings' shared Redis is: a URL, a cluster node or Sentinel's primary."""
    from commsgw.eventlog._redis_connect import RedisTarget  # redis is imported only when used

    if settings.event_log == "sentinel":
        return RedisTarget(
            sentinels=tuple((a.host, a.port) for a in settings.event_log_sentinels),
            service=settings.event_log_sentinel_service,
        )
    return RedisTarget(url=settings.event_log, cluster=settings.event_log_cluster)


def make_event_log(settings: Settings) -> EventLog:
    if settings.event_log == "memory":
        return MemoryEventLog(
            max_events=settings.event_log_max_events, max_age_s=settings.event_log_max_age_s
        )
    from commsgw.eventlog._redis import RedisEventLog  # redis is imported only when used

    return RedisEventLog(
        redis_target(settings),
        key_prefix=settings.event_log_key,
        max_events=settings.event_log_max_events,
        max_age_s=settings.event_log_max_age_s,
        min_replicas=settings.event_log_min_replicas,
        replica_timeout_s=settings.event_log_replica_timeout_s,
    )


async def probe_write(settings: Settings) -> str:
    """Write (and delete) one short-lived key under the log's prefix, through the connection
    the log itself would make (URL, Sentinel's primary or Cluster); returns where it wrote.
    Raises EventLogUnavailable when the write is refused (a replica, no Redis, ...)."""
    from redis.exceptions import RedisError

    from commsgw._errors import EventLogUnavailable
    from commsgw.eventlog._redis_connect import connect, log_prefix

    target = redis_target(settings)
    where = settings.event_log if target.url else f"Sentinel service {target.service}"
    client = connect(target, socket_timeout=settings.graph_timeout_s)
    key = f"{log_prefix(target, settings.event_log_key)}:probe:{uuid.uuid4().hex}"
    try:
        await client.set(key, "1", px=10_000)
        await client.delete(key)
    except RedisError as exc:
        raise EventLogUnavailable(f"{where}: {exc}") from exc
    finally:
        await client.aclose()
    return where
