"""The keepAlive registry the settings ask for: shared in Redis when the event log is, else in
memory (see `_registry` for the keys)."""

from __future__ import annotations

from commsgw._config import Settings
from commsgw.keepalive._registry import MemoryRegistry, Registry


def make_registry(settings: Settings) -> Registry:
    """The registry for the settings' event log: Redis when the log is shared, else memory."""
    if settings.event_log == "memory":
        return MemoryRegistry()
    from commsgw.eventlog import redis_target
    from commsgw.keepalive._redis_registry import RedisRegistry  # redis only when used

    return RedisRegistry(redis_target(settings), key_prefix=settings.event_log_key)
