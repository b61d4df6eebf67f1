"""What the Redis event log reads back: stream ids as Positions, stream rows as LogEntry
objects, and the redis errors that mean the connection is gone (shared by the log, its reader
and its writer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from google.protobuf.message import DecodeError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from commsgw.eventlog import _callstates as cs
from commsgw.eventlog._base import LogEntry, Position
from graphcomms.v1 import calls_pb2

__all__ = ["CONNECTION_ERRORS", "as_text", "entries_of", "format_id", "parse_id"]

log = logging.getLogger("commsgw.redislog")

_FIELD: Final = b"e"

CONNECTION_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)


def parse_id(raw: bytes | str) -> Position:
    """A stream id ``b"ms-seq"`` as a Position."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq or 0))


def format_id(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def as_text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


_TRACE_FIELD: Final = b"t"  # the traceparent of the webhook POST that stored the entry
_FLAG_FIELD: Final = b"f"  # a call update's flag: s stale, c confirms an observed end


def entries_of(rows: Sequence[tuple[bytes, dict[bytes, bytes]]] | Any) -> list[LogEntry]:
    """LogEntry objects of XRANGE/XREAD rows; an undecodable entry is logged and skipped."""
    out: list[LogEntry] = []
    for raw_id, fields in rows:
        data = fields.get(_FIELD) if fields else None
        position = parse_id(raw_id)
        if data is None:
            log.error("event log entry %s has no event; skipped", format_id(position))
            continue
        try:
            event = calls_pb2.Event.FromString(data)
        except DecodeError:
            log.error("event log entry %s does not decode; skipped", format_id(position))
            continue
        flag = fields.get(_FLAG_FIELD)
        if flag:  # decided when it was stored (see _callstates): set on the event read back
            cs.mark(event.call_update, cs.Decision(flag.decode("ascii", "replace")))
        entry = LogEntry(position, event)
        if not flag:
            entry._payload = data
        traced = fields.get(_TRACE_FIELD)
        if traced:
            entry.traceparent = traced.decode("ascii", "replace")
        out.append(entry)
    return out
