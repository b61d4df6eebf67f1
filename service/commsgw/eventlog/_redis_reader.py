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
from typing import Final

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
    _on_gap: Callable[[], None] | None

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
                if log_id_raw is None:
                    # The metadata is gone (keys deleted): recreate it, with a new identity.
                    res = await self._start_script(
                        keys=self._meta_keys, args=[uuid.uuid4().hex], client=self._reader
                    )
                    log_id_raw = res[0]
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

            log_id = as_text(log_id_raw)
            gap = ""
            if log_id != self.log_id:
                gap = f"the event log was recreated (log id {self.log_id} -> {log_id})"
                self.log_id = log_id
            elif trimmed_raw is not None and parse_id(trimmed_raw) > self._last:
                gap = (
                    f"entries after {format_id(self._last)} were trimmed before this replica "
                    f"read them (trimmed through {as_text(trimmed_raw)})"
                )
            if gap:
                self.gaps += 1
                log.error("event log gap: %s; cutting every watch", gap)
                if self._on_gap is not None:
                    try:
                        self._on_gap()
                    except Exception:
                        log.exception("event log on_gap callback failed")
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

    async def _probe_writer(self) -> None:
        try:
            await self._client.ping()
        except RedisError:
            return
        self._writer_ok = True
