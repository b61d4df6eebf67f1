"""In-order delivery of commsNotifications to callback URLs (one queue and task per call).

Delivery faults (:class:`DeliveryFault`, set per call by a test) mis-deliver the call's next
matching notifications: ``duplicate`` posts one twice, ``late`` holds one ``delay_s`` while the
later ones go ahead, ``outOfOrder`` posts one after the notification that follows it (it waits
for that one, or for the call's end).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx

from commsgw.emulator._match import body_matches

_log = logging.getLogger("commsgw.emulator")


@functools.cache
def _default_trust() -> ssl.SSLContext:
    """httpx's default trust for https callbacks (certifi's store), loaded once per process:
    loading it takes tens of milliseconds, and a test suite may start an emulator per test."""
    return httpx.create_ssl_context()


class DeliveryAttempt(NamedTuple):
    """One POST to a callback. ``status`` is None when the connection failed."""

    url: str
    status: int | None
    call_id: str
    attempt: int  # 1-based
    payload: dict[str, Any]
    error: str | None
    at: float
    misdelivery: str | None = None  # duplicate | late | outOfOrder: a delivery fault's doing


DUPLICATE, LATE, OUT_OF_ORDER = "duplicate", "late", "outOfOrder"


@dataclass
class DeliveryFault:
    """Mis-deliver the next ``remaining`` notifications of a call that match ``match`` (a
    body-subset pattern; None: any)."""

    kind: str
    remaining: int = 1
    delay_s: float = 1.0
    match: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in (DUPLICATE, LATE, OUT_OF_ORDER):
            raise ValueError(f"kind must be {DUPLICATE}, {LATE} or {OUT_OF_ORDER}")
        if self.remaining < 1:
            raise ValueError("count must be at least 1")
        if self.delay_s < 0:
            raise ValueError("delayS must be >= 0")

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.remaining,
            "delayS": self.delay_s,
            "match": self.match,
        }


@dataclass
class _Item:
    callback_uri: str
    tenant_id: str
    audience: str
    notification: dict[str, Any]
    misdelivery: str | None = None
    held: bool = False  # outOfOrder: waits for the next notification of its call


@dataclass
class _Lane:
    items: deque[_Item] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    busy: bool = False
    task: asyncio.Task[None] | None = None


MintToken = Callable[[str, str], str]  # (tenant_id, audience) -> bearer JWT


class NotificationDispatcher:
    def __init__(
        self,
        *,
        mint: MintToken,
        delay_s: float,
        retries: int,
        backoff_s: float,
        batch: bool,
        verify: bool | str,
        timeout_s: float = 5.0,
    ) -> None:
        self._mint = mint
        self.delay_s = delay_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.batch = batch
        trust = _default_trust() if verify is True else verify
        self._client = httpx.AsyncClient(verify=trust, timeout=timeout_s)
        self._lanes: dict[str, _Lane] = {}
        self.attempts: list[DeliveryAttempt] = []
        self.dropped: list[dict[str, Any]] = []
        self._progress = asyncio.Event()  # set after every delivered/dropped batch
        self.faults: dict[str, list[DeliveryFault]] = {}  # call id -> its delivery faults
        self._late: set[asyncio.Task[None]] = set()

    def add_fault(self, call_id: str, fault: DeliveryFault) -> None:
        self.faults.setdefault(call_id, []).append(fault)

    def _misdelivery(self, call_id: str, notification: dict[str, Any]) -> DeliveryFault | None:
        for fault in self.faults.get(call_id, []):
            if fault.match is None or body_matches(fault.match, notification):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults[call_id].remove(fault)
                return fault
        return None

    def submit(
        self, call_id: str, callback_uri: str, tenant_id: str, audience: str, n: dict[str, Any]
    ) -> None:
        lane = self._lanes.get(call_id)
        if lane is None or (lane.closed and lane.task is not None and lane.task.done()):
            lane = self._lanes[call_id] = _Lane()
            lane.task = asyncio.get_running_loop().create_task(
                self._run(call_id, lane), name=f"emulator-notify-{call_id}"
            )
        item = _Item(callback_uri, tenant_id, audience, n)
        fault = self._misdelivery(call_id, n)
        if fault is not None and fault.kind == LATE:
            item.misdelivery = LATE
            task = asyncio.get_running_loop().create_task(
                self._deliver_late(call_id, item, fault.delay_s)
            )
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return
        if fault is not None:
            item.misdelivery, item.held = fault.kind, fault.kind == OUT_OF_ORDER
        lane.items.append(item)
        lane.wake.set()

    async def _deliver_late(self, call_id: str, item: _Item, delay_s: float) -> None:
        try:
            await asyncio.sleep(delay_s)
            await self._deliver(call_id, [item], LATE)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._late.discard(task)  # before idle() looks again
            self._progress.set()

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued notification was delivered (or dropped)."""
        async with asyncio.timeout(timeout):
            while self._late or any(lane.items or lane.busy for lane in self._lanes.values()):
                self._progress.clear()
                await self._progress.wait()

    async def _run(self, call_id: str, lane: _Lane) -> None:
        while True:
            if not lane.items:
                if lane.closed:
                    return
                lane.wake.clear()
                await lane.wake.wait()
                continue
            head = lane.items[0]
            if head.held:  # outOfOrder: after the one that follows it (or at the call's end)
                if len(lane.items) < 2 and not lane.closed:
                    lane.wake.clear()
                    await lane.wake.wait()
                    continue
                head.held = False
                if len(lane.items) >= 2:
                    follower = lane.items[1]
                    follower.held = False  # it goes first: out of order too
                    lane.items[0], lane.items[1] = follower, head
            if self.batch:
                batch = list(lane.items)
                lane.items.clear()
            else:
                batch = [lane.items.popleft()]
            lane.busy = True
            try:
                if self.delay_s > 0:
                    await asyncio.sleep(self.delay_s)
                await self._deliver(call_id, batch, None)
                if any(it.misdelivery == DUPLICATE for it in batch):
                    await self._deliver(call_id, batch, DUPLICATE)
            except asyncio.CancelledError:
                raise
            except Exception:  # pragma: no cover - never let a lane die
                _log.exception("notification delivery crashed for call %s", call_id)
            finally:
                lane.busy = False
                self._progress.set()

    async def _deliver(self, call_id: str, batch: list[_Item], kind: str | None) -> None:
        first = batch[0]
        payload = {
            "@odata.type": "#microsoft.graph.commsNotifications",
            "value": [it.notification for it in batch],
        }
        for attempt in range(1, self.retries + 2):
            token = self._mint(first.tenant_id, first.audience)
            status: int | None = None
            error: str | None = None
            try:
                resp = await self._client.post(
                    first.callback_uri,
                    json=payload,
                    headers={"Authorization": f"Bearer {token}"},
                )
                status = resp.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.attempts.append(
                DeliveryAttempt(
                    first.callback_uri,
                    status,
                    call_id,
                    attempt,
                    payload,
                    error,
                    time.time(),
                    kind
                    or (
                        OUT_OF_ORDER if any(i.misdelivery == OUT_OF_ORDER for i in batch) else None
                    ),
                )
            )
            if status is not None and 200 <= status < 300:
                return
            if attempt <= self.retries:
                await asyncio.sleep(self.backoff_s * (2 ** (attempt - 1)))
        _log.warning(
            "dropping %d notification(s) for call %s to %s after %d attempts (last: %s)",
            len(batch),
            call_id,
            first.callback_uri,
            self.retries + 1,
            status if status is not None else error,
        )
        self.dropped.append(payload)

    def close_lane(self, call_id: str) -> None:
        """No more notifications for this call: the lane's task ends once drained."""
        lane = self._lanes.get(call_id)
        if lane is not None:
            lane.closed = True
            lane.wake.set()

    async def reset(self) -> None:
        """Forget everything: queued notifications are not sent, the logs are emptied."""
        await self._stop_lanes()
        self.attempts.clear()
        self.dropped.clear()
        self._progress.set()

    async def _stop_lanes(self) -> None:
        self.faults.clear()
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        tasks += list(self._late)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._lanes.clear()

    async def aclose(self) -> None:
        await self._stop_lanes()
        await self._client.aclose()
