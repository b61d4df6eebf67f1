"""The keeper: follows the event log's call updates and sends each live call's keepAlive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from commsgw._errors import (
    CommsgwError,
    GraphError,
)
from commsgw._ids import new_guid
from commsgw.eventlog import Hub, LogEntry
from commsgw.graph import ACTIONS, GraphClient, RequestConfig
from commsgw.keepalive._reconcile import DEADLINE_PASSED, GRAPH_NOT_FOUND, Reconciler, expired
from commsgw.keepalive._registry import Registry
from graphcomms.v1 import calls_pb2

log = logging.getLogger("commsgw.keepalive")

# States of a call that Graph keeps (and may end for want of keepAlive).
ALIVE = frozenset(
    {
        calls_pb2.CALL_STATE_ESTABLISHED,
        calls_pb2.CALL_STATE_HOLD,
        calls_pb2.CALL_STATE_TRANSFERRING,
        calls_pb2.CALL_STATE_TRANSFER_ACCEPTED,
    }
)
ENDED = frozenset({calls_pb2.CALL_STATE_TERMINATING, calls_pb2.CALL_STATE_TERMINATED})
# A period's lease lasts a little less than the period, so that the next one is free in time.
LEASE_FRACTION = 0.9
# Graph ends a call that got no keepAlive for this long (45 minutes).
GRAPH_IDLE_LIMIT_S = 2700.0


@dataclass(frozen=True, slots=True)
class KeepAliveConfig:
    """How often each call gets its keepAlive, and how its request is written and bounded."""

    requests: RequestConfig
    interval_s: float
    request_timeout_s: float


class KeepAlive:
    """Managed keepAlive for every live call in the event log (see the package docstring)."""

    def __init__(
        self,
        config: KeepAliveConfig,
        graph: GraphClient,
        hub: Hub,
        registry: Registry,
        *,
        on_outcome: Callable[[str], None] | None = None,
        reconciler: Reconciler | None = None,
        idle_limit_s: float = GRAPH_IDLE_LIMIT_S,
    ) -> None:
        self._config = config
        self._reconciler = reconciler
        self.idle_limit_s = idle_limit_s
        # Per call, the loop time of its last sign of life: a keepAlive that succeeded (or a
        # period another replica's lease covered), or a notification that it is alive.
        self.life: dict[str, float] = {}
        self._graph = graph
        self._hub = hub
        self._registry = registry
        self._on_outcome = on_outcome
        self.interval = config.interval_s
        self.retry_s = min(60.0, self.interval / 3)
        self._tick = min(1.0, self.interval / 10)
        self.due: dict[str, tuple[float, str]] = {}  # call id -> (loop time, tenant)
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writes: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            known = await self._registry.calls()
        except Exception as exc:  # the registry (Redis) is down: learn calls from the log
            log.warning("keepAlive: could not read the calls kept alive: %s", exc)
            known = {}
        # Calls another replica kept alive: when their last keepAlive was is unknown here, so
        # the next is due soon (a live replica holding the period's lease makes this a no-op).
        for i, (call, tenant) in enumerate(sorted(known.items())):
            self.due[call] = (loop.time() + self._tick * (1 + i % 10), tenant)
            self.life[call] = loop.time()
        self._hub.observe_calls(self._on_call_update)
        self._spawn(self._record())
        self._spawn(self._schedule())
        log.info("managed keepAlive every %.0f s (%d calls known)", self.interval, len(known))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._registry.close()

    # ---- what calls there are ----------------------------------------------------------

    def _on_call_update(self, entry: LogEntry) -> None:
        """Called by the hub with every call update, in log order."""
        update = entry.event.call_update
        call, tenant = entry.call_id, entry.tenant_id
        ended = update.state in ENDED or entry.event.change_type == calls_pb2.CHANGE_TYPE_DELETED
        if ended and call in self.due:
            del self.due[call]
            self.life.pop(call, None)
            self._writes.put_nowait((call, None))
        elif update.state in ALIVE and call and not update.stale:
            now = asyncio.get_running_loop().time()
            self.life[call] = now
            if call not in self.due:
                self.due[call] = (now + self.interval, tenant)
                self._writes.put_nowait((call, tenant))

    async def _record(self) -> None:
        """Writes the calls seen to the shared registry (in order; a failure is logged, the
        local schedule goes on)."""
        while True:
            call, tenant = await self._writes.get()
            try:
                if tenant is None:
                    await self._registry.remove(call)
                else:
                    await self._registry.add(call, tenant)
            except Exception as exc:
                log.warning("keepAlive: could not record call %s: %s", call, exc)

    # ---- sending -----------------------------------------------------------------------

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._tick)
            now = loop.time()
            for call, (when, tenant) in list(self.due.items()):
                if when <= now and call not in self._busy:
                    self._busy.add(call)
                    self._spawn(self._beat(call, tenant))

    def _next(self, call: str, tenant: str, delay: float) -> None:
        if call in self.due:  # not ended meanwhile
            self.due[call] = (asyncio.get_running_loop().time() + delay, tenant)

    async def _beat(self, call: str, tenant: str) -> None:
        try:
            if not await self._registry.lease(call, self.interval * LEASE_FRACTION):
                self._note("skipped")  # another replica sends this period's keepAlive
                self._alive(call)
                self._next(call, tenant, self.interval)
                return
            action = ACTIONS["KeepAlive"]
            req = action.build(
                calls_pb2.KeepAliveRequest(call_id=call, tenant_id=tenant), self._config.requests
            )
            await self._graph.send(
                req,
                retry=action.retry,
                crid=new_guid(),
                timeout=self._config.request_timeout_s,
            )
        except GraphError as err:
            if err.http_status == 404:  # the call has ended: nothing more to keep alive
                detail = f"KeepAlive answered 404, graph request-id {err.request_id or '-'}"
                if not await self._observe(call, tenant, GRAPH_NOT_FOUND, detail):
                    return
                self._note("gone")
                await self._let_go(call)
                return
            self._note("failed")
            log.warning("keepAlive of call %s failed: %s", call, err.message)
            with contextlib.suppress(Exception):
                await self._registry.release(call)
            await self._failed(call, tenant)
        except CommsgwError as err:
            self._note("failed")
            log.warning("keepAlive of call %s not sent: %s", call, err.message)
            await self._failed(call, tenant)
        except Exception as exc:  # Redis down: try again soon, the call must not expire
            self._note("failed")
            log.warning("keepAlive of call %s not sent: %s", call, exc)
            await self._failed(call, tenant)
        else:
            self._note("sent")
            self._alive(call)
            self._next(call, tenant, self.interval)
        finally:
            self._busy.discard(call)

    def _alive(self, call: str) -> None:
        if call in self.due:
            self.life[call] = asyncio.get_running_loop().time()

    async def _let_go(self, call: str) -> None:
        self.due.pop(call, None)
        self.life.pop(call, None)
        with contextlib.suppress(Exception):
            await self._registry.remove(call)

    async def _failed(self, call: str, tenant: str) -> None:
        """A keepAlive that failed: try again soon, unless the call has passed Graph's idle
        limit since its last sign of life (then Graph has ended it: report it ended)."""
        now = asyncio.get_running_loop().time()
        last = self.life.setdefault(call, now)
        if self._reconciler is not None and expired(last, now, self.idle_limit_s):
            detail = f"no keepAlive succeeded and no notification came for {now - last:.0f} s"
            if await self._observe(call, tenant, DEADLINE_PASSED, detail):
                self._note("expired")
                await self._let_go(call)
                return
        self._next(call, tenant, self.retry_s)

    async def _observe(
        self, call: str, tenant: str, reason: calls_pb2.ObservedEndReason.ValueType, detail: str
    ) -> bool:
        """Report the call ended (when reconciliation is on); False when that could not be
        stored (the call stays due, so that the next try reports it)."""
        if self._reconciler is None:
            return True
        try:
            await self._reconciler.observe(tenant, call, reason, detail)
        except Exception as exc:
            log.warning("could not report call %s ended: %s; trying again", call, exc)
            self._next(call, tenant, self.retry_s)
            return False
        return True

    def _note(self, outcome: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)
