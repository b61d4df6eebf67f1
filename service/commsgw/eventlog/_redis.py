"""The Redis Streams event log: shared by every replica, bounded by count and by age.

Key layout (``P`` is the configured key prefix):

``P:events``
    The stream. Each entry has one field ``e``, the serialised ``calls_pb2.Event``. Positions
    are the stream ids ``(ms, seq)``.
``P:log-id``
    The identity of the stream, a random hex string shared by every replica (it goes into every
    resume token).
``P:trimmed``
    The id of the newest entry ever trimmed away ("0-0" when none). Every trim goes through the
    append script, which computes the exact id, so a token equal to it is still resumable (the
    next entry is retained) and anything older is not. Redis 7.0 does not maintain
    ``max-deleted-entry-id`` for trimming (only for XDEL), hence this key.
``P:dedup:<hex>``
    One key per accepted notification (``SET NX PX=max_age``): a redelivery within the
    retention window is dropped.
``P:replicated`` / ``P:replicated-to``
    With ``min_replicas``: the marker written at the end of each write batch, and a short
    stream of marks, each the id up to which WAIT confirmed the replicas hold every entry.
``P:latest`` / ``P:latest-idx``
    Hash ``[tenant,call,operation]`` (JSON) -> stream id of the latest update of each operation,
    and ``[tenant,call]`` -> stream id of the latest (not stale) update of each call, whose
    entry has a field ``c``, the code of its state (see ``_callstates``); a sorted set of the
    same fields scored by the id's milliseconds, used to drop the fields whose entry was
    trimmed. A call update's entry may carry a field ``f``: ``s`` stale, ``c`` confirms an
    observed end.

The log id rule: the id is created in the same atomic script that creates the stream. Whenever
the stream key is missing (first start, or someone deleted it), the script creates an empty
stream, a fresh log id, resets ``P:trimmed`` and drops the latest-state keys; whenever the
stream exists but ``P:log-id`` or ``P:trimmed`` is missing, a fresh id is made too and
``P:trimmed`` is set conservatively (just below the first retained entry). So a token from a
deleted or damaged stream is always refused as coming from another log. Both ``start`` and
every ``append`` run this check (a few O(1) commands).

Trimming is exact (to ``max_events`` entries, and every entry older than ``max_age_s`` by the
Redis clock) and happens inside the append script, once per call, after the new entries.

Writing: appends are group-committed (``_redis_writer``). Each POST's notifications go through
one atomic script call; the calls that arrive while a write is in flight are sent together as
one pipeline on one connection, so the number of connections does not grow with the number of
concurrent POSTs (redis-py's pool would refuse the 101st with "Too many connections") and a
burst costs one round trip per batch. Every POST still gets its own answer: its script's
result, or its own error. With ``min_replicas`` above 0 the batch ends with a write of
``P:replicated`` and ``WAIT min_replicas timeout``: replication is one ordered stream, so once
that many replicas acknowledged the marker they hold every entry before it, new or found as a
duplicate. Fewer within the timeout: every append of the batch fails (503; Graph redelivers).
Then the stream's last id read by the marker script is added to ``P:replicated-to``; readers
hand over only entries up to the newest such mark (they read both streams in one XREAD), so a
subscriber never sees an entry a failover can still take back: an unconfirmed write lost with
the primary and stored again from Graph's redelivery would otherwise reach it twice.

Deployments (``_redis_connect``): a URL (one Redis); Sentinel (the client asks the Sentinels
for the primary on each new connection, so after a failover both the writer and the reader
reconnect to the promoted replica, the reader from its last id); or a Cluster node's URL, where
the key prefix becomes a hash tag so that the scripts' keys are all in one slot.

Readers (``_redis_reader``): each instance runs one task that loops on a pipeline ``XREAD
BLOCK`` + ``GET P:trimmed`` + ``GET P:log-id`` on its own connection. It hands the entries to
the listener in order and advances its last id only after handing them over; after an error it
reconnects with backoff and reads on from its last id, so nothing is missed or repeated. A *gap*
is reported (``on_gap``, see :meth:`RedisEventLog.start`) when entries after the reader's last
id were trimmed before it could read them (``P:trimmed`` > last id: the reader lagged more than
``max_events`` entries, or was disconnected that long), or when the log id changed. A new log
id means another stream whose ids say nothing about the old one's: a stream recreated within
the millisecond of the last entry read, or on a promoted replica whose clock is behind, starts
at or below the reader's last id. So the reader then reads the new log from its own start (its
``P:trimmed`` mark, read with its id in one script call) and hands that position to ``on_gap``,
which moves the hub's head there.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Final

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from commsgw._errors import EventLogUnavailable, ResumeTokenExpired
from commsgw.eventlog._base import (
    ZERO,
    Appended,
    AppendResult,
    EventLog,
    LogEntry,
    Position,
    chunks,
)
from commsgw.eventlog._redis_calls import call_args, latest_ids
from commsgw.eventlog._redis_connect import RedisTarget, connect, log_prefix
from commsgw.eventlog._redis_reader import StreamReader
from commsgw.eventlog._redis_stream import as_text, entries_of, format_id, parse_id
from commsgw.eventlog._redis_writer import GroupCommitWriter

_LATEST_FETCH_CHUNK: Final = 1000


def _lua(name: str) -> str:
    """A script of the ``lua/`` folder, with the shared prelude. The shebang (Redis >= 7) makes
    Redis refuse a writing script as a whole when it is out of memory, instead of failing
    half-way through."""
    folder = importlib.resources.files("commsgw.eventlog") / "lua"
    prelude = (folder / "prelude.lua").read_text(encoding="utf-8")
    body = (folder / f"{name}.lua").read_text(encoding="utf-8")
    return f"#!lua\n{prelude}\n{body}"


_START_LUA: Final = _lua("start")
_APPEND_LUA: Final = _lua("append")


def operation_field(key: tuple[str, ...]) -> bytes:
    """The latest-state hash field of an operation key (tenant, call, operation) or a call key
    (tenant, call) (JSON: injective whatever the ids, and the two kinds never collide)."""
    return json.dumps(key, separators=(",", ":")).encode()


class RedisEventLog(StreamReader, GroupCommitWriter, EventLog):
    """An event log in a Redis (>= 7) stream shared by every replica; see the module doc.

    ``log_id`` is known once :meth:`start` returned (it is "" before) and may change later if
    the stream is deleted and recreated (the reader then reports a gap).
    """

    def __init__(
        self,
        target: str | RedisTarget,
        *,
        key_prefix: str,
        max_events: int,
        max_age_s: float,
        block_ms: int = 1000,
        op_timeout_s: float = 2.0,
        max_backoff_s: float = 2.0,
        min_replicas: int = 0,
        replica_timeout_s: float = 1.0,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if min_replicas < 0 or replica_timeout_s <= 0:
            raise ValueError("min_replicas must be 0 or more, replica_timeout_s above 0")
        target = RedisTarget.of(target)
        key_prefix = log_prefix(target, key_prefix)
        self.log_id = ""
        self.key_prefix = key_prefix
        """The key prefix in use (in a cluster, a hash tag; see `log_prefix`)."""
        self._prefix = key_prefix
        self._stream = f"{key_prefix}:events"
        self._meta_keys = [
            self._stream,
            f"{key_prefix}:log-id",
            f"{key_prefix}:trimmed",
            f"{key_prefix}:latest",
            f"{key_prefix}:latest-idx",
        ]
        self._dedup_prefix = f"{key_prefix}:dedup:"
        self._max_events = max_events
        self._max_age_ms = max(1, round(max_age_s * 1000))
        self._block_ms = max(1, block_ms)
        self._max_backoff = max_backoff_s
        instance = uuid.uuid4().hex[:12]
        self.reader_client_name = f"{key_prefix}:reader:{instance}".replace(" ", "_")
        self.writer_client_name = f"{key_prefix}:writer:{instance}".replace(" ", "_")
        # The writer: appends (one batch at a time, see "Writing"), ranges, checks. One quick
        # retry on a broken pooled connection (e.g. after a Redis restart); a retried append
        # is safe (dedup).
        self._min_replicas = min_replicas
        self._replica_timeout_ms = max(1, round(replica_timeout_s * 1000))
        self._wait_marker = f"{key_prefix}:replicated"
        self._commits = f"{key_prefix}:replicated-to" if min_replicas else None
        self._commit_read = "0-0"
        self._held = []
        self.replica_shortfalls = 0
        """How many write batches WAIT found fewer than `min_replicas` replicas for."""
        self._client = connect(
            target,
            socket_timeout=op_timeout_s + (replica_timeout_s if min_replicas else 0.0),
            socket_connect_timeout=op_timeout_s,
            retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),
            client_name=self.writer_client_name,
        )
        # The reader: one dedicated connection, blocking reads; it retries by itself.
        self._reader = connect(
            target,
            socket_timeout=self._block_ms / 1000 + op_timeout_s,
            socket_connect_timeout=op_timeout_s,
            retry=Retry(ExponentialBackoff(), 0),
            client_name=self.reader_client_name,
            max_connections=2,
        )
        self._append_script = self._client.register_script(_APPEND_LUA)
        self._pending = []
        self._flushing = None
        self._start_script = self._client.register_script(_START_LUA)
        self._listener = None
        self._on_gap = None
        self._task: asyncio.Task[None] | None = None
        self._last = ZERO
        self._reader_ok = False
        self._writer_ok = True
        self._closed = False
        self.gaps = 0
        """How many times the reader found entries it could not deliver (see `start`)."""
        self.reconnects = 0
        """How many times the reader's connection failed and was re-established."""

    # --- life cycle ----------------------------------------------------------------------

    async def start(
        self,
        listener: Callable[[Sequence[LogEntry]], None],
        on_gap: Callable[[Position | None], None] | None = None,
    ) -> Position:
        """Start the reader; returns the stream's last generated id ((0, 0) when new).

        `on_gap` is called (before the next entries are handed over) whenever the reader
        could not deliver every entry after its last one: they were trimmed before it read
        them, or the stream was recreated (new log id). The hub should pass `Hub.fail_all`, so
        that every watch ends and resumes through `check_resumable`, which refuses what is lost.
        Without `on_gap` the gap is logged and counted in `gaps`.

        Raises EventLogUnavailable when Redis cannot be reached.
        """
        if self._task is not None:
            raise RuntimeError("RedisEventLog.start called twice")
        try:
            await self._client.ping()
            res = await self._start_script(
                keys=self._meta_keys, args=[uuid.uuid4().hex], client=self._reader
            )
        except RedisError as exc:
            raise EventLogUnavailable(f"the event log (Redis) is unreachable: {exc}") from exc
        self.log_id = as_text(res[0])
        self._last = self._read = self._committed = parse_id(res[1])
        self._listener = listener
        self._on_gap = on_gap
        self._reader_ok = True
        self._writer_ok = True
        self._task = asyncio.get_running_loop().create_task(
            self._read_loop(), name=f"redislog-reader-{self._prefix}"
        )
        return self._last

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reader_ok = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._listener = None
        writer = self._flushing
        if writer is not None:
            # Appends already handed over get their answer before the connection goes.
            await asyncio.wait([writer])
        await self._reader.aclose()
        await self._client.aclose()

    @property
    def ready(self) -> bool:
        return self._task is not None and self._reader_ok and self._writer_ok

    # --- writing -------------------------------------------------------------------------

    async def append(self, items: Sequence[Appended], *, traceparent: str = "") -> AppendResult:
        if not items:
            return AppendResult(0, 0)
        if self._closed:
            raise EventLogUnavailable("the event log is closed")
        keys: list[str | bytes] = list(self._meta_keys)
        args: list[str | int | bytes] = [
            uuid.uuid4().hex,
            self._max_events,
            self._max_age_ms,
            traceparent,
        ]
        for item in items:
            keys.append(self._dedup_prefix + item.dedup_key.hex())
            args.append(item.event.SerializeToString())
            op = item.operation_key
            args.append(operation_field(op) if op is not None else b"")
            args.extend(call_args(item.event))
        res = await self._commit(keys, args)
        appended = sum(1 for r in res if r != 0)
        return AppendResult(appended, len(items) - appended)

    # --- reading -------------------------------------------------------------------------

    async def read_range(self, after: Position, until: Position, limit: int) -> list[LogEntry]:
        if limit <= 0 or until <= after:
            return []
        try:
            rows = await self._client.xrange(
                self._stream, min="(" + format_id(after), max=format_id(until), count=limit
            )
        except RedisError as exc:
            raise EventLogUnavailable(f"the event log (Redis) cannot be read: {exc}") from exc
        return entries_of(rows)

    async def check_resumable(self, position: Position) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.get(self._meta_keys[2])
            pipe.xinfo_stream(self._stream)
            trimmed_raw, info = await pipe.execute(raise_on_error=False)
        except RedisError as exc:
            raise EventLogUnavailable(f"the event log (Redis) cannot be read: {exc}") from exc
        if isinstance(trimmed_raw, RedisError):
            raise EventLogUnavailable(f"the event log (Redis) cannot be read: {trimmed_raw}")
        if isinstance(info, RedisError):
            # No stream: it was deleted; nothing after any position is retained.
            if position != ZERO:
                raise ResumeTokenExpired("resume_token points into an event log that is gone")
            return
        last = parse_id(info["last-generated-id"])
        trimmed = parse_id(trimmed_raw) if trimmed_raw is not None else last
        if position > last:
            raise ResumeTokenExpired("resume_token points past the end of the event log")
        if position < trimmed:
            raise ResumeTokenExpired(
                "resume_token is older than what the event log retains; resume without a "
                "token (include_snapshot gives the latest state of every operation)"
            )

    async def latest_operations(self) -> list[LogEntry]:
        return await self._latest(calls=False)

    async def latest_calls(self) -> list[LogEntry]:
        return await self._latest(calls=True)

    async def _latest(self, *, calls: bool) -> list[LogEntry]:
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.get(self._meta_keys[2])
            pipe.hgetall(self._meta_keys[3])
            trimmed_raw, latest = await pipe.execute()
            trimmed = parse_id(trimmed_raw) if trimmed_raw is not None else ZERO
            ids = sorted({p for p in map(parse_id, latest_ids(latest, calls=calls)) if p > trimmed})
            out: list[LogEntry] = []
            for chunk in chunks(ids, _LATEST_FETCH_CHUNK):
                pipe = self._client.pipeline(transaction=False)
                for p in chunk:
                    s = format_id(p)
                    pipe.xrange(self._stream, min=s, max=s, count=1)
                for rows in await pipe.execute():
                    out.extend(entries_of(rows))
        except RedisError as exc:
            raise EventLogUnavailable(f"the event log (Redis) cannot be read: {exc}") from exc
        return out

    async def latest_operation(self, key: tuple[str, str, str]) -> LogEntry | None:
        return await self._indexed(operation_field(key))

    async def latest_call(self, key: tuple[str, str]) -> LogEntry | None:
        return await self._indexed(operation_field(key))

    async def _indexed(self, field: bytes) -> LogEntry | None:
        """The entry the latest-state index names for ``field`` (None: none, or trimmed since:
        the log no longer knows it)."""
        try:
            raw = await self._client.hget(self._meta_keys[3], field)
            if raw is None:
                return None
            s = format_id(parse_id(raw))
            rows = await self._client.xrange(self._stream, min=s, max=s, count=1)
        except RedisError as exc:
            raise EventLogUnavailable(f"the event log (Redis) cannot be read: {exc}") from exc
        found = entries_of(rows)
        return found[0] if found else None


__all__ = ["RedisEventLog", "format_id", "parse_id"]
