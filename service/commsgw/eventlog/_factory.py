"""The event log the settings ask for: in memory (default) or a shared Redis stream."""

from __future__ import annotations

from commsgw._config import Settings
from commsgw.eventlog._base import EventLog
from commsgw.eventlog._memory import MemoryEventLog


def make_event_log(settings: Settings) -> EventLog:
    if settings.event_log == "memory":
        return MemoryEventLog(
            max_events=settings.event_log_max_events, max_age_s=settings.event_log_max_age_s
        )
    from commsgw.eventlog._redis import RedisEventLog  # redis is imported only when used

    return RedisEventLog(
        settings.event_log,
        key_prefix=settings.event_log_key,
        max_events=settings.event_log_max_events,
        max_age_s=settings.event_log_max_age_s,
    )
