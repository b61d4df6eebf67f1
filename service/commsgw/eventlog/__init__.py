"""The event log: where accepted notifications are stored in order, and the fan-out hub.

Owns the `EventLog` interface and its swappable implementations (in memory, Redis Streams),
resume tokens, watch filters, the order of Graph's call states (`_callstates`: which call
updates are stale and what becomes a call's latest state) and the hub that hands each stored
entry to the local subscribers whose filter it matches. May import the shared kernel and the
generated contract only.
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
from commsgw.eventlog._callstates import Decision, decide, is_stale
from commsgw.eventlog._factory import probe_write
from commsgw.eventlog._hub import Hub, WatchItem
from commsgw.eventlog._memory import MemoryEventLog

__all__ = [
    "AppendResult",
    "Appended",
    "Decision",
    "EventLog",
    "Hub",
    "LogEntry",
    "MemoryEventLog",
    "Position",
    "WatchFilter",
    "WatchItem",
    "decide",
    "decode_token",
    "encode_token",
    "is_stale",
    "probe_write",
]
