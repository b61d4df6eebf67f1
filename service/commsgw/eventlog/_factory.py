"""The event log the settings ask for: in memory (default) or a shared Redis stream (one Redis,
Sentinel or a Cluster)."""

from __future__ import annotations

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
