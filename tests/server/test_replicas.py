"""Several real gateway processes sharing one Redis Streams event log.

Webhook on one replica, subscriber on another; SIGKILL and resume elsewhere; every replica
restarted; Redis restarted mid-stream; tokens expired by trimming; 503 while Redis is down.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
import httpx
import pytest
import redis.asyncio as aioredis

from commsgw.emulator import Emulator
from commsgw.testing import GatewayProcess
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.ids import new_guid
from helpers.notifications import TENANT, op_notification
from helpers.polling import eventually
from helpers.private_redis import PrivateRedis
from helpers.status import error_details
from helpers.watch import first_bookmark

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

SHARED_REDIS = "redis://127.0.0.1:6379/0"


class Cluster:
    def __init__(self, emulator: Emulator, tmp: pathlib.Path, redis_url: str, **env: str) -> None:
        self.emulator = emulator
        self.tmp = tmp
        self.prefix = f"commsgw-test-{uuid.uuid4().hex[:12]}"
        self.env = {
            "COMMSGW_EMULATOR_URL": emulator.base_url,
            "COMMSGW_CA_FILE": str(emulator.ca_path),
            "COMMSGW_EVENT_LOG": redis_url,
            "COMMSGW_EVENT_LOG_KEY": self.prefix,
            "COMMSGW_BOOKMARK_INTERVAL_S": "1",
            "COMMSGW_LOG_LEVEL": "INFO",
            **env,
        }
        self.redis_url = redis_url
        self.procs: list[GatewayProcess] = []
        self.http = httpx.AsyncClient()

    async def replica(self) -> GatewayProcess:
        p = GatewayProcess(self.env, str(self.tmp / f"replica-{len(self.procs)}.log"))
        self.procs.append(p)
        await p.start()
        return p

    async def post(self, replica: GatewayProcess, notes: Sequence[dict[str, Any]]) -> int:
        body = json.dumps({"value": list(notes)})
        token = self.emulator.mint_notification_token(tenant_id=TENANT)
        r = await self.http.post(
            replica.webhook,
            content=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        return r.status_code

    async def close(self) -> None:
        for p in self.procs:
            p.kill()
        await self.http.aclose()
        r = aioredis.from_url(self.redis_url)
        try:
            keys = [k async for k in r.scan_iter(match=f"{self.prefix}*")]
            if keys:
                await r.delete(*keys)
        except Exception:  # a private Redis already stopped: nothing left to clean
            pass
        finally:
            await r.aclose()


@pytest.fixture
async def cluster_factory(
    emulator: Emulator, tmp_path: pathlib.Path
) -> AsyncIterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(redis_url: str = SHARED_REDIS, **env: str) -> Cluster:
        c = Cluster(emulator, tmp_path, redis_url, **env)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            await c.close()


class Watcher:
    """A subscriber that records every event and the last token, across reconnects."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.ids: list[str] = []
        self.token = ""

    async def run(self, target: str, until: int, timeout: float = 20) -> None:
        async with grpc.aio.insecure_channel(target) as ch:
            stub = calls_pb2_grpc.CallsServiceStub(ch)
            req = calls_pb2.WatchOperationsRequest(call_ids=[self.call_id], resume_token=self.token)
            call = stub.WatchOperations(req)
            try:
                async with asyncio.timeout(timeout):
                    async for r in call:
                        self.token = r.resume_token
                        if r.WhichOneof("kind") == "event":
                            self.ids.append(r.event.operation_update.operation.id)
                            if len(self.ids) >= until:
                                return
            finally:
                call.cancel()


async def test_webhook_on_a_subscriber_on_b_then_kill_b_and_resume_on_a(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory()
    a, b = await c.replica(), await c.replica()
    call_id = new_guid()
    ops = [new_guid() for _ in range(30)]
    w = Watcher(call_id)
    w.token = await first_bookmark(b.target, call_id)  # a position on B before any event
    reading = asyncio.create_task(w.run(b.target, until=10))
    for i in range(0, 20, 5):
        assert await c.post(a, [op_notification(call_id, o) for o in ops[i : i + 5]]) == 202
    await reading
    assert w.ids == ops[:10]
    b.kill()  # SIGKILL mid-stream
    for i in range(20, 30, 5):
        assert await c.post(a, [op_notification(call_id, o) for o in ops[i : i + 5]]) == 202
    await w.run(a.target, until=30)
    assert w.ids == ops  # in order, none lost, none twice


async def test_every_replica_restarted_resume_works(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory()
    a, b = await c.replica(), await c.replica()
    call_id = new_guid()
    ops = [new_guid() for _ in range(10)]
    w = Watcher(call_id)
    w.token = await first_bookmark(a.target, call_id)
    assert await c.post(b, [op_notification(call_id, o) for o in ops[:5]]) == 202
    await w.run(a.target, until=5)
    assert a.terminate() == 0 and b.terminate() == 0
    a2, b2 = await c.replica(), await c.replica()
    assert await c.post(a2, [op_notification(call_id, o) for o in ops[5:]]) == 202
    await w.run(b2.target, until=10)
    assert w.ids == ops


async def test_duplicates_suppressed_across_replicas(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory()
    a, b = await c.replica(), await c.replica()
    call_id, op, marker = new_guid(), new_guid(), new_guid()
    w = Watcher(call_id)
    w.token = await first_bookmark(a.target, call_id)
    note = op_notification(call_id, op)
    assert await c.post(a, [note]) == 202
    assert await c.post(b, [note]) == 202  # Graph redelivered to the other replica
    assert await c.post(b, [op_notification(call_id, marker)]) == 202
    await w.run(a.target, until=2)
    assert w.ids == [op, marker]


async def test_snapshot_across_replicas(cluster_factory: Callable[..., Cluster]) -> None:
    c = cluster_factory()
    a, b = await c.replica(), await c.replica()
    call_id, op = new_guid(), new_guid()
    marker = Watcher(new_guid())
    marker.token = await first_bookmark(b.target, marker.call_id)
    assert await c.post(a, [op_notification(call_id, op, status="running")]) == 202
    assert await c.post(a, [op_notification(call_id, op, status="completed")]) == 202
    assert await c.post(a, [op_notification(marker.call_id, new_guid())]) == 202
    await marker.run(b.target, until=1)  # B's reader has seen the marker, so what came before
    async with grpc.aio.insecure_channel(b.target) as ch:
        call = calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(
            calls_pb2.WatchOperationsRequest(call_ids=[call_id], include_snapshot=True)
        )
        it = call.__aiter__()
        snap = await anext(it)
        end = await anext(it)
        call.cancel()
    assert snap.event.operation_update.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert end.bookmark.kind == calls_pb2.BOOKMARK_KIND_SNAPSHOT_END


async def test_expired_token_after_trimming(cluster_factory: Callable[..., Cluster]) -> None:
    c = cluster_factory(COMMSGW_EVENT_LOG_MAX_EVENTS="5")
    a, b = await c.replica(), await c.replica()
    call_id = new_guid()
    token = await first_bookmark(b.target, call_id)
    for _ in range(3):
        assert await c.post(a, [op_notification(call_id, new_guid()) for _ in range(4)]) == 202
    w = Watcher(call_id)
    w.token = token
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await w.run(a.target, until=1)
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert error_details(info.value)[0].reason == "RESUME_TOKEN_EXPIRED"


@pytest.fixture
async def private_redis(tmp_path: pathlib.Path) -> AsyncIterator[PrivateRedis]:
    r = PrivateRedis(tmp_path)
    await r.start()
    try:
        yield r
    finally:
        r.stop()


async def test_redis_restart_mid_stream_and_503_while_down(
    cluster_factory: Callable[..., Cluster], private_redis: PrivateRedis
) -> None:
    c = cluster_factory(private_redis.url)
    a, b = await c.replica(), await c.replica()
    call_id = new_guid()
    ops = [new_guid() for _ in range(10)]
    w = Watcher(call_id)
    w.token = await first_bookmark(b.target, call_id)
    reading = asyncio.create_task(w.run(b.target, until=10, timeout=60))
    assert await c.post(a, [op_notification(call_id, o) for o in ops[:5]]) == 202
    await eventually(lambda: len(w.ids) >= 5, interval=0.05)
    private_redis.stop()
    # Redis down: the webhook refuses rather than lose the notification; Graph redelivers.
    refused = op_notification(call_id, ops[5])
    assert await c.post(a, [refused]) == 503
    await private_redis.start()

    async def stored() -> bool:
        status = await c.post(a, [refused])
        assert status in (202, 503), status
        return status == 202

    await eventually(stored, timeout=20, interval=0.2, what="the refused POST is stored")
    assert await c.post(a, [op_notification(call_id, o) for o in ops[6:]]) == 202
    await reading  # the same stream, no error: a delay, no gap
    assert w.ids == ops
