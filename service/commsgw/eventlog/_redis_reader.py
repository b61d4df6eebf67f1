"""The Redis event log's reader task (see "Readers" in ``_redis``).

One loop per instance on its own connection: ``XREAD BLOCK`` with the trim mark and the log id,
entries handed to the listener in order, gaps (trimmed before read, or a new log id) reported,
and after an error a reconnect with backoff that reads on from the last id.
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
                pipe.xread(
                    {self._stream: format_id(self._last)},
                    count=_READ_COUNT,
                    block=self._block_ms,
                )
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
                self._last = restart
                continue
            if trimmed_raw is not None and parse_id(trimmed_raw) > self._last:
                self._report_gap(
                    f"entries after {format_id(self._last)} were trimmed before this replica "
                    f"read them (trimmed through {as_text(trimmed_raw)})",
                    None,
                )
            if not batches:
                continue
            rows = batches[0][1] if isinstance(batches, list) else next(iter(batches.values()))[0]
            if not rows:
                continue
            entries = entries_of(rows)
            self._last = parse_id(rows[-1][0])
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
