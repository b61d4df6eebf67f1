"""The Redis event log's reader task (see "Readers" in ``_redis``).

One loop per instance on its own connection: ``XREAD BLOCK`` with the trim mark and the log id,
entries handed to the listener in order, gaps (trimmed before read, or a new log id) reported,
and after an error a reconnect with backoff that reads on from the last id. With replica
confirmation, entries are held back until a replicated mark covers them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from commsgw.eventlog._base import LogEntry, Position
from commsgw.eventlog._redis_stream import (
    CONNECTION_ERRORS,
    as_text,
    entries_of,
    format_id,
    parse_id,
)

__all__ = ["StreamReader"]

log = logging.getLogger("commsgw.redislog")

_READ_COUNT: Final = 500


class StreamReader:
    """The reading task of :class:`~commsgw.eventlog._redis.RedisEventLog` (a mixin: the log's
    ``__init__`` sets these attributes)."""

    log_id: str
    gaps: int
    reconnects: int
    _closed: bool
    _client: aioredis.Redis
    _reader: aioredis.Redis
    _start_script: AsyncScript
    _stream: str
    _meta_keys: list[str]
    _block_ms: int
    _max_backoff: float
    _last: Position
    _read: Position
    _commits: str | None
    _commit_read: str
    _committed: Position
    _held: list[Any]
    _reader_ok: bool
    _writer_ok: bool
    _listener: Callable[[Sequence[LogEntry]], None] | None
    _on_gap: Callable[[Position | None], None] | None

    async def _read_loop(self) -> None:
        delay = 0.0
        failed = False
        while not self._closed:
            try:
                pipe = self._reader.pipeline(transaction=False)
                streams: dict[Any, Any] = {self._stream: format_id(self._read)}
                if self._commits is not None:
                    streams[self._commits] = self._commit_read
                pipe.xread(streams, count=_READ_COUNT, block=self._block_ms)
                pipe.get(self._meta_keys[2])
                pipe.get(self._meta_keys[1])
                batches, trimmed_raw, log_id_raw = await pipe.execute()
                recreated: list[Any] | None = None
                if log_id_raw is None or as_text(log_id_raw) != self.log_id:
                    # Another log (recreated, or its metadata is gone: the script then makes
                    # a new identity). The script reads its id and start in one atomic step;
                    # what XREAD returned may belong to either log and is read again.
                    recreated = await self._start_script(
                        keys=self._meta_keys, args=[uuid.uuid4().hex], client=self._reader
                    )
            except CONNECTION_ERRORS as exc:
                self._reader_ok = False
                # What was held back may have been lost with the server: read it again.
                self._held.clear()
                self._read = self._last
                if not failed:
                    log.warning("event log reader lost Redis (%s); reconnecting", exc)
                failed = True
                delay = min(self._max_backoff, max(0.05, delay * 2))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                continue
            except RedisError as exc:
                self._reader_ok = False
                log.error("event log reader: Redis error %s; retrying", exc)
                delay = min(self._max_backoff, max(0.05, delay * 2))
                await asyncio.sleep(delay)
                continue
            if failed:
                failed = False
                self.reconnects += 1
                log.info("event log reader reconnected to Redis")
            delay = 0.0
            self._reader_ok = True
            if not self._writer_ok:
                await self._probe_writer()

            if recreated is not None and as_text(recreated[0]) != self.log_id:
                # A new log: its positions say nothing about the old one's (a stream recreated
                # in the same millisecond, or on a primary whose clock is behind, reuses ids
                # at or below the last one read), so it is read from its own start.
                log_id = as_text(recreated[0])
                restart = parse_id(recreated[2])
                self._report_gap(
                    f"the event log was recreated (log id {self.log_id} -> {log_id})", restart
                )
                self.log_id = log_id
                self._last = self._read = self._committed = restart
                self._held.clear()
                continue
            if trimmed_raw is not None and parse_id(trimmed_raw) > self._last:
                self._report_gap(
                    f"entries after {format_id(self._last)} were trimmed before this replica "
                    f"read them (trimmed through {as_text(trimmed_raw)})",
                    None,
                )
            if batches:
                self._take(_by_stream(batches))

    def _take(self, read: dict[str, Any]) -> None:
        """Hand over what XREAD returned; with replica confirmation (``_commits``), only the
        entries up to the newest replicated mark, the others held until a mark covers them."""
        rows = read.get(self._stream, [])
        if self._commits is None:
            if rows:
                self._read = self._last = parse_id(rows[-1][0])
                self._hand_over(rows)
            return
        marks = read.get(self._commits, [])
        if marks:
            self._commit_read = as_text(marks[-1][0])
            for _id, fields in marks:
                mark = fields.get(b"m") if fields else None
                if mark is not None:
                    self._committed = max(self._committed, parse_id(mark))
        if rows:
            self._read = parse_id(rows[-1][0])
            self._held.extend(rows)
        n = 0
        while n < len(self._held) and parse_id(self._held[n][0]) <= self._committed:
            n += 1
        if n:
            release = self._held[:n]
            del self._held[:n]
            self._last = parse_id(release[-1][0])
            self._hand_over(release)

    def _hand_over(self, rows: list[Any]) -> None:
        entries = entries_of(rows)
        if entries and self._listener is not None:
            try:
                self._listener(entries)
            except Exception:
                log.exception("event log listener failed")

    def _report_gap(self, what: str, restart: Position | None) -> None:
        self.gaps += 1
        log.error("event log gap: %s; cutting every watch", what)
        if self._on_gap is not None:
            try:
                self._on_gap(restart)
            except Exception:
                log.exception("event log on_gap callback failed")

    async def _probe_writer(self) -> None:
        try:
            await self._client.ping()
        except RedisError:
            return
        self._writer_ok = True


def _by_stream(batches: Any) -> dict[str, Any]:
    """XREAD's answer (a list of [stream, rows] in RESP2, a dict in RESP3) by stream name."""
    if isinstance(batches, dict):
        return {as_text(k): v[0] for k, v in batches.items()}
    return {as_text(name): rows for name, rows in batches}
