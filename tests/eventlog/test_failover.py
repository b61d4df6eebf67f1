"""A Redis failover under two gateway replicas, on loopback (`make test-failover`), and the log
recreated under them (in `make test`).

A primary, a replica behind a link with 0.2 s of latency (asynchronous replication that lags)
and three Sentinels; two gateway processes on Sentinel; Graph-like POSTs, one notification
each, retried until answered 202 as Graph does; `kill -9` of the primary mid-run; the Sentinels
promote the replica, the gateways reconnect to it, the killed server comes back as a replica
of the new primary, the subscribers resume. Counted per COMMSGW_EVENT_LOG_MIN_REPLICAS: acked,
delivered, missing, duplicated, for a live subscriber on each gateway and for one that resumes
after the run from a token taken before it. The counts are printed and written to
failover-counts.json in the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import shutil
import time
import uuid
from collections import Counter
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
from helpers.sentinel import SERVICE, SentinelGroup
from helpers.watch import first_bookmark

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]
SHARED_REDIS = "redis://127.0.0.1:6379/0"

TOTAL = 240  # notifications posted
KILL_AFTER = 80  # acked before the primary is killed
SENDERS = 8  # concurrent POSTs (Graph delivers in parallel)
RUN_S = 140.0  # the whole run, bounded (about 20 s on an idle machine)
MARKER = "marker"


class Subscriber:
    """WatchOperations on one call, resumed with its last token after every error; after
    OUT_OF_RANGE (what it asked for is gone) it starts again without a token."""

    def __init__(self, target: str, call_id: str, token: str) -> None:
        self.target = target
        self.call_id = call_id
        self.token = token
        self.ops: list[str] = []
        self.resumes = 0
        self.out_of_range = 0

    async def run(self) -> None:
        while True:
            try:
                async with grpc.aio.insecure_channel(self.target) as ch:
                    stub = calls_pb2_grpc.CallsServiceStub(ch)
                    call = stub.WatchOperations(
                        calls_pb2.WatchOperationsRequest(
                            call_ids=[self.call_id], resume_token=self.token
                        )
                    )
                    async for r in call:
                        self.token = r.resume_token
                        if r.WhichOneof("kind") == "event":
                            op = r.event.operation_update.operation.id
                            if op == MARKER:
                                return
                            self.ops.append(op)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.OUT_OF_RANGE:
                    self.out_of_range += 1
                    self.token = ""
                elif err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            self.resumes += 1
            await asyncio.sleep(0.1)

    def counts(self, acked: set[str]) -> dict[str, int]:
        seen = Counter(self.ops)
        return {
            "delivered": len(acked & set(seen)),
            "missing": len(acked - set(seen)),
            "duplicated": sum(n - 1 for n in seen.values() if n > 1),
            "resumes": self.resumes,
            "out_of_range": self.out_of_range,
        }


class GraphLike:
    """Posts each notification until a gateway answers 202, alternating between them (a load
    balancer in front), with backoff; counts the non-202 answers."""

    def __init__(self, emulator: Emulator, webhooks: list[str]) -> None:
        self.emulator = emulator
        self.webhooks = webhooks
        self.http = httpx.AsyncClient(timeout=5)
        self.acked: set[str] = set()
        self.refused = 0
        self.turn = 0

    async def deliver(self, call_id: str, op: str) -> None:
        body = json.dumps({"value": [op_notification(call_id, op)]})
        delay = 0.05
        while True:
            url = self.webhooks[self.turn % len(self.webhooks)]
            self.turn += 1
            token = self.emulator.mint_notification_token(tenant_id=TENANT)
            try:
                r = await self.http.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {token}",
                    },
                )
                if r.status_code == 202:
                    self.acked.add(op)
                    return
                assert r.status_code == 503, (r.status_code, r.text)
            except httpx.TransportError:
                pass
            self.refused += 1
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)


async def stored_ops(port: int, prefix: str) -> list[str]:
    async with aioredis.Redis(port=port) as r:
        rows = await r.xrange(f"{prefix}:events")
    return [
        calls_pb2.Event.FromString(fields[b"e"]).operation_update.operation.id
        for _id, fields in rows
    ]


async def run_failover(emulator: Emulator, tmp: pathlib.Path, min_replicas: int) -> dict[str, Any]:
    group = SentinelGroup(tmp, link_delay=0.2)
    gateways: list[GatewayProcess] = []
    subs: list[asyncio.Task[None]] = []
    prefix = f"commsgw-failover-{uuid.uuid4().hex[:8]}"
    graph: GraphLike | None = None
    live: list[Subscriber] = []
    try:
        await group.start()
        env = {
            "COMMSGW_EMULATOR_URL": emulator.base_url,
            "COMMSGW_CA_FILE": str(emulator.ca_path),
            "COMMSGW_EVENT_LOG": "sentinel",
            "COMMSGW_EVENT_LOG_SENTINELS": group.sentinels,
            "COMMSGW_EVENT_LOG_SENTINEL_SERVICE": SERVICE,
            "COMMSGW_EVENT_LOG_KEY": prefix,
            "COMMSGW_EVENT_LOG_MIN_REPLICAS": str(min_replicas),
            "COMMSGW_EVENT_LOG_REPLICA_TIMEOUT_S": "1",
            "COMMSGW_BOOKMARK_INTERVAL_S": "1",
            "COMMSGW_LOG_LEVEL": "INFO",
        }
        for i in range(2):
            gw = GatewayProcess(env, str(tmp / f"gateway-{i}.log"))
            gateways.append(gw)
            await gw.start()
        call_id = new_guid()
        start_token = await first_bookmark(gateways[0].target, call_id)
        live = [Subscriber(gw.target, call_id, start_token) for gw in gateways]
        subs = [asyncio.create_task(s.run()) for s in live]
        graph = GraphLike(emulator, [gw.webhook for gw in gateways])
        ops = [f"op-{i:04d}" for i in range(TOTAL)]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for op in ops:
            queue.put_nowait(op)

        async def sender() -> None:
            assert graph is not None
            while not queue.empty():
                await graph.deliver(call_id, queue.get_nowait())

        async with asyncio.timeout(RUN_S):
            senders = [asyncio.create_task(sender()) for _ in range(SENDERS)]
            await eventually(lambda: len(graph.acked) >= KILL_AFTER, timeout=RUN_S)
            old_primary = await group.primary()
            acked_at_kill = len(graph.acked)
            killed_at = group.kill_primary()
            await eventually(
                lambda: _promoted(group, old_primary), timeout=30, interval=0.1, what="promotion"
            )
            promoted_s = time.monotonic() - killed_at
            new_primary = await group.primary()
            # The killed server comes back empty and joins the new primary as its replica.
            await group.restart_old_primary(replica_of=new_primary)
            await asyncio.gather(*senders)
            # The marker: once a subscriber has it, it has every entry stored before it.
            await graph.deliver(call_id, MARKER)
            await asyncio.gather(*subs)
            late = Subscriber(gateways[1].target, call_id, start_token)
            await late.run()
        in_log = set(await stored_ops(new_primary, prefix))
        acked = graph.acked - {MARKER}
        counts: dict[str, Any] = {
            "min_replicas": min_replicas,
            "posted": TOTAL,
            "acked": len(acked),
            "acked_before_kill": acked_at_kill,
            "non_202_answers": graph.refused,
            "missing_from_log": len(acked - in_log),
            "promotion_s": round(promoted_s, 1),
            "live_on_gateway_a": live[0].counts(acked),
            "live_on_gateway_b": live[1].counts(acked),
            "resumed_after_run": late.counts(acked),
        }
        return counts
    except BaseException:
        if graph is not None:
            print(f"acked {len(graph.acked)} of {TOTAL}, non-202 answers {graph.refused}")
        for sub in live:
            print(f"subscriber on {sub.target}: {len(sub.ops)} events, {sub.resumes} resumes")
        for gw in gateways:
            print(f"--- {gw.log_path}\n{gw.logs()}")
        for name in ("primary", "replica", "sentinel-0"):
            log = tmp / f"{name}.log"
            if log.exists():
                print(f"--- {log}\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for t in subs:
            t.cancel()
        for gw in gateways:
            gw.kill()
        if graph is not None:
            await graph.http.aclose()
        await group.close()


async def _promoted(group: SentinelGroup, old: int) -> bool:
    try:
        return await group.primary() != old
    except Exception:
        return False


def report(tmp: pathlib.Path, counts: dict[str, Any]) -> None:
    line = json.dumps(counts)
    print(f"\nfailover counts: {line}")
    out = tmp / "failover-counts.json"
    out.write_text(line + "\n")


@pytest.mark.failover
@pytest.mark.timeout(200)
@pytest.mark.parametrize("min_replicas", [0, 1])
async def test_failover_counts(
    emulator: Emulator, tmp_path: pathlib.Path, min_replicas: int
) -> None:
    counts = await run_failover(emulator, tmp_path, min_replicas)
    report(tmp_path, counts)
    assert counts["acked"] == TOTAL  # every notification was answered 202 in the end
    assert counts["resumed_after_run"]["duplicated"] == 0, counts
    if min_replicas:
        # Acknowledged only once a replica held it: the promoted replica has every one, and
        # subscribers got only what the replicas held, so nothing twice either.
        assert counts["missing_from_log"] == 0, counts
        for who in ("live_on_gateway_a", "live_on_gateway_b", "resumed_after_run"):
            assert counts[who]["missing"] == 0, (who, counts)
            assert counts[who]["duplicated"] == 0, (who, counts)


async def test_log_recreated_under_the_gateways(emulator: Emulator, tmp_path: pathlib.Path) -> None:
    """Every key of the log gone (an empty replica promoted, or FLUSHDB): every watch on every
    gateway ends UNAVAILABLE; resuming with its last token is OUT_OF_RANGE (that token is of a
    log that is gone); without a token, the snapshot has what the new log holds, then live."""
    prefix = f"commsgw-test-{uuid.uuid4().hex[:12]}"
    env = {
        "COMMSGW_EMULATOR_URL": emulator.base_url,
        "COMMSGW_CA_FILE": str(emulator.ca_path),
        "COMMSGW_EVENT_LOG": SHARED_REDIS,
        "COMMSGW_EVENT_LOG_KEY": prefix,
        "COMMSGW_BOOKMARK_INTERVAL_S": "1",
    }
    gateways = [GatewayProcess(env, str(tmp_path / f"gateway-{i}.log")) for i in range(2)]
    graph = GraphLike(emulator, [gw.webhook for gw in gateways[:1]])
    admin = aioredis.Redis.from_url(SHARED_REDIS)
    try:
        for gw in gateways:
            await gw.start()
        call_id = new_guid()
        tokens = [await first_bookmark(gw.target, call_id) for gw in gateways]
        await graph.deliver(call_id, "before")

        seen = [asyncio.Event() for _ in gateways]

        async def watch_until_it_ends(i: int) -> tuple[list[str], str, Any]:
            ops: list[str] = []
            token = tokens[i]
            async with grpc.aio.insecure_channel(gateways[i].target) as ch:
                call = calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(
                    calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=token)
                )
                try:
                    async for r in call:
                        token = r.resume_token
                        if r.WhichOneof("kind") == "event":
                            ops.append(r.event.operation_update.operation.id)
                            seen[i].set()
                except grpc.aio.AioRpcError as err:
                    return ops, token, err.code()
            raise AssertionError("the watch ended without an error")

        async with asyncio.timeout(30):
            watches = [asyncio.create_task(watch_until_it_ends(i)) for i in range(2)]
            for e in seen:
                await e.wait()
            # Every key of the log goes (never FLUSHDB on the shared Redis), then a POST.
            keys = [k async for k in admin.scan_iter(match=f"{prefix}:*")]
            await admin.delete(*keys)
            await graph.deliver(call_id, "after")
            ended = await asyncio.gather(*watches)
        for ops, _token, code in ended:
            assert ops == ["before"]
            assert code == grpc.StatusCode.UNAVAILABLE
        for gw, (_ops, token, _code) in zip(gateways, ended, strict=True):
            async with grpc.aio.insecure_channel(gw.target) as ch:
                stub = calls_pb2_grpc.CallsServiceStub(ch)
                resumed = stub.WatchOperations(
                    calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=token)
                )
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _r in resumed:
                        pass
                assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
                assert "another event log" in (info.value.details() or "")
                fresh = stub.WatchOperations(
                    calls_pb2.WatchOperationsRequest(call_ids=[call_id], include_snapshot=True)
                )
                kinds: list[str] = []
                async with asyncio.timeout(10):
                    async for r in fresh:
                        if r.WhichOneof("kind") == "event":
                            kinds.append(r.event.operation_update.operation.id)
                        elif r.bookmark.kind == calls_pb2.BOOKMARK_KIND_SNAPSHOT_END:
                            break
                fresh.cancel()
                assert kinds == ["after"]  # what the new log holds; "before" is gone
    finally:
        for gw in gateways:
            gw.kill()
        await graph.http.aclose()
        keys = [k async for k in admin.scan_iter(match=f"{prefix}:*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()
