"""The event log: where accepted notifications are stored in order, and the fan-out hub.

Owns the `EventLog` interface and its swappable implementations (in memory, Redis Streams),
resume tokens, watch filters, the order of Graph's call states (`_callstates`: which call
updates are stale and what becomes a call's latest state) and the hub that hands each stored
entry to the local subscribers whose filter it matches. May import the shared kernel and the
generated contract only.

The Redis connection (`RedisTarget`, `connect`, `log_prefix`, which keepAlive's shared registry
uses too) is loaded on first use, so that importing the package does not import redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from commsgw.eventlog._base import (
    Appended,
    AppendResult,
    EventLog,
    LogEntry,
    Position,
    WatchFilter,
    decode_token,
    encode_token,
)
from commsgw.eventlog._callstates import Decision, decide, is_stale
from commsgw.eventlog._factory import EventLogConfig, make_event_log, probe_write, redis_target
from commsgw.eventlog._hub import Hub, WatchItem
from commsgw.eventlog._memory import MemoryEventLog

if TYPE_CHECKING:
    from commsgw.eventlog._redis_connect import RedisTarget, connect, log_prefix

_REDIS_NAMES = ("RedisTarget", "connect", "log_prefix")


def __getattr__(name: str) -> Any:
    if name in _REDIS_NAMES:  # redis is imported only when used
        from commsgw.eventlog import _redis_connect

        return getattr(_redis_connect, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AppendResult",
    "Appended",
    "Decision",
    "EventLog",
    "EventLogConfig",
    "Hub",
    "LogEntry",
    "MemoryEventLog",
    "Position",
    "RedisTarget",
    "WatchFilter",
    "WatchItem",
    "connect",
    "decide",
    "decode_token",
    "encode_token",
    "is_stale",
    "log_prefix",
    "make_event_log",
    "probe_write",
    "redis_target",
]
