"""The event log: where accepted notifications are stored in order, and the fan-out hub.

Owns the `EventLog` interface and its swappable implementations (in memory, Redis Streams),
resume tokens, watch filters and the hub that hands each stored entry to the local subscribers
whose filter it matches. May import the shared kernel and the generated contract only.
"""

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
from commsgw.eventlog._hub import Hub, WatchItem
from commsgw.eventlog._memory import MemoryEventLog

__all__ = [
    "AppendResult",
    "Appended",
    "EventLog",
    "Hub",
    "LogEntry",
    "MemoryEventLog",
    "Position",
    "WatchFilter",
    "WatchItem",
    "decode_token",
    "encode_token",
]
