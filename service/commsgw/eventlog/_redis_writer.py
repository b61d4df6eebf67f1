"""The Redis event log's group-commit writer (see "Writing" in ``_redis``).

Appends wait in a list while a write is in flight and then go out together, up to
``_WRITE_BATCH`` script calls in one pipeline on one connection. A batch that finds Redis's
script cache empty (NOSCRIPT) loads the script and resends what was refused; every append gets
its own result or error, including those a failed or cancelled writer leaves behind. With
``min_replicas``, each batch ends with ``WAIT`` and its appends succeed only when that many
replicas confirmed them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from commsgw._errors import EventLogUnavailable
from commsgw.eventlog._redis_stream import CONNECTION_ERRORS

__all__ = ["GroupCommitWriter"]

log = logging.getLogger("commsgw.redislog")

# The marker write before WAIT; returns the stream's last id (KEYS: 1 stream, 2 marker).
_MARK_LUA: Final = """
redis.call('SET', KEYS[2], ARGV[1], 'PX', 60000)
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then return '0-0' end
return last[1][1]
"""

# Appends sent in one pipeline at most (each is one script call).
_WRITE_BATCH: Final = 256


class GroupCommitWriter:
    """The writing side of :class:`~commsgw.eventlog._redis.RedisEventLog` (a mixin: the log's
    ``__init__`` sets these attributes)."""

    _prefix: str
    _client: aioredis.Redis
    _append_script: AsyncScript
    _pending: list[_PendingAppend]
    _flushing: asyncio.Task[None] | None
    _writer_ok: bool
    _min_replicas: int
    _replica_timeout_ms: int
    _wait_marker: str
    _stream: str
    _commits: str | None
    writer_client_name: str
    replica_shortfalls: int

    async def _commit(self, keys: list[str | bytes], args: list[str | int | bytes]) -> list[Any]:
        """Run the append script with these keys and arguments in the next batch."""
        loop = asyncio.get_running_loop()
        pending = _PendingAppend(keys, args, loop.create_future())
        self._pending.append(pending)
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush(), name=f"redislog-writer-{self._prefix}")
            self._flushing.add_done_callback(self._writer_done)
        return await pending.future

    async def _flush(self) -> None:
        """Send the waiting appends, a batch at a time, until none is left."""
        try:
            while self._pending:
                batch = self._pending[:_WRITE_BATCH]
                del self._pending[:_WRITE_BATCH]
                await self._write(batch)
        finally:
            self._flushing = None

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        """A writer that was cancelled or failed answers the appends it left (nobody waits
        forever), unless a newer writer has already taken them over."""
        if self._flushing is task:  # cancelled before it ever ran
            self._flushing = None
        if not task.cancelled() and task.exception() is None:
            return
        if self._flushing is None and self._pending:
            left, self._pending = self._pending, []
            _fail(left, EventLogUnavailable("the event log write was interrupted"))

    async def _write(self, batch: list[_PendingAppend]) -> None:
        sha = self._append_script.sha
        todo = batch
        mark: bytes | str | None = None
        try:
            for attempt in range(2):
                pipe = self._client.pipeline(transaction=False)
                for p in todo:
                    # As a plain command: a cluster pipeline refuses its evalsha() helper
                    # but routes EVALSHA by its keys (all in one slot, see `log_prefix`).
                    pipe.execute_command("EVALSHA", sha, len(p.keys), *p.keys, *p.args)
                if self._min_replicas:
                    self._wait_for_replicas(pipe)
                results = await pipe.execute(raise_on_error=False)
                short = self._replicas_short(results[-1]) if self._min_replicas else None
                if self._min_replicas and short is None and isinstance(results[-2], bytes | str):
                    mark = results[-2]
                missing: list[_PendingAppend] = []
                for p, res in zip(todo, results, strict=False):
                    if isinstance(res, NoScriptError) and attempt == 0:
                        missing.append(p)  # not run at all: safe to send again
                    elif isinstance(res, Exception):
                        p.fail(
                            EventLogUnavailable(f"the event log (Redis) refused the write: {res}")
                        )
                    elif short is not None:
                        p.fail(short)  # stored on the primary, but it could still be lost
                    else:
                        p.succeed(res)
                if not missing:
                    break
                # Redis lost its script cache (restarted or SCRIPT FLUSH): load it once.
                await self._client.script_load(self._append_script.script)
                todo = missing
        except CONNECTION_ERRORS as exc:
            self._writer_ok = False
            _fail(batch, EventLogUnavailable(f"the event log (Redis) is unreachable: {exc}"))
            return
        except RedisError as exc:
            _fail(batch, EventLogUnavailable(f"the event log (Redis) refused the write: {exc}"))
            return
        except BaseException:
            _fail(batch, EventLogUnavailable("the event log write was interrupted"))
            raise
        self._writer_ok = True
        if mark is not None:
            await self._publish_commit(mark)

    def _wait_for_replicas(self, pipe: Any) -> None:
        """End the batch with a marker write and WAIT: the replicas' acknowledged offset
        covers the marker only once they hold everything written before it, by any client,
        so a duplicate (stored earlier, perhaps by another replica of the gateway) is
        confirmed as well as a new entry. The marker script returns the stream's last id: once
        WAIT confirmed it, every entry up to that id is on the replicas."""
        pipe.eval(_MARK_LUA, 2, self._stream, self._wait_marker, self.writer_client_name)
        pipe.execute_command("WAIT", self._min_replicas, self._replica_timeout_ms)

    async def _publish_commit(self, mark: bytes | str) -> None:
        """Tell every reader that the entries up to `mark` are on the replicas (they hand over
        only those, see "Readers" in ``_redis``). A mark lost here is covered by the next."""
        assert self._commits is not None
        try:
            await self._client.xadd(self._commits, {b"m": mark}, maxlen=64, approximate=True)
        except RedisError as exc:
            log.warning("event log: the replicated mark %r was not published: %s", mark, exc)

    def _replicas_short(self, answer: object) -> EventLogUnavailable | None:
        """None when WAIT confirmed enough replicas, else the error each append gets (503:
        Graph redelivers, and the dedup key keeps the redelivery from being stored twice)."""
        if isinstance(answer, int) and answer >= self._min_replicas:
            return None
        self.replica_shortfalls += 1
        got = f"{answer} of" if isinstance(answer, int) else f"none of ({answer})"
        return EventLogUnavailable(
            f"the event log (Redis) stored the notification but {got} "
            f"{self._min_replicas} replicas confirmed it within "
            f"{self._replica_timeout_ms / 1000:g} s"
        )


class _PendingAppend:
    """One append waiting for its batch: the script's keys and arguments, and its answer."""

    __slots__ = ("args", "future", "keys")

    def __init__(
        self,
        keys: list[str | bytes],
        args: list[str | int | bytes],
        future: asyncio.Future[list[Any]],
    ) -> None:
        self.keys = keys
        self.args = args
        self.future = future

    def succeed(self, result: list[Any]) -> None:
        if not self.future.done():  # the POST may have gone away meanwhile
            self.future.set_result(result)

    def fail(self, err: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(err)


def _fail(appends: Sequence[_PendingAppend], err: EventLogUnavailable) -> None:
    for p in appends:
        p.fail(err)
