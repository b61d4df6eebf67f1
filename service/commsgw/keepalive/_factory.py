"""The keepAlive registry an event log configuration asks for: shared in Redis when the log is,
else in memory (see `_registry` for the keys)."""

from __future__ import annotations

from commsgw.eventlog import EventLogConfig
from commsgw.keepalive._registry import MemoryRegistry, Registry


def make_registry(config: EventLogConfig) -> Registry:
    """The registry beside the event log: in Redis (under the log's key prefix) when the log is
    shared, else in memory."""
    if not config.shared:
        return MemoryRegistry()
    from commsgw.eventlog import redis_target
    from commsgw.keepalive._redis_registry import RedisRegistry  # redis only when used

    return RedisRegistry(redis_target(config), key_prefix=config.key)
