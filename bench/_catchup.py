"""Scenario 4c, catch-up: subscribers that resume behind a backlog, where batched delivery
(`max_events_per_response`) has queued events to batch. In 4a and 4b the subscribers keep up,
so only what queues in the hub between two writes is batched; here every event is already in
the event log when the streams open, which is what a subscriber reconnecting after an outage
or a deploy meets.

Each run: take a START bookmark's resume token from the server, post the backlog (signed
POSTs at a fixed rate, no subscriber open), then open the subscribers with that token and read
until every event has come to every stream. The server's CPU is read around the reading part
only, so the figure is the cost of delivery alone (no ingest); the bare server replays its
pre-serialised messages the same way (`bench._bare`)."""

from __future__ import annotations

import time
from typing import Any

import grpc

from bench._common import guid, in_turn
from bench._ctx import (
    Ctx,
    Result,
    batched_cpu_rows,
    col,
    compare,
    delivery_cells,
    running,
    spread,
)
from bench._pin import busy, core_times
from bench._procs import Server
from graphcomms.v1 import calls_pb2, calls_pb2_grpc

BATCH = 64


async def _start_token(server: Server) -> str:
    """The resume token of a new stream's START bookmark: resuming from it gives every event
    that comes after."""
    async with grpc.aio.insecure_channel(server.target) as channel:
        call = calls_pb2_grpc.CallsServiceStub(channel).WatchOperations(
            calls_pb2.WatchOperationsRequest(), timeout=30
        )
        async for r in call:
            if r.WhichOneof("kind") == "bookmark" and (
                r.bookmark.kind == calls_pb2.BOOKMARK_KIND_START
            ):
                call.cancel()
                return r.resume_token
    raise RuntimeError(f"{server.name}: no START bookmark")


async def _run(
    ctx: Ctx, server: Server, url: str, *, events: int, rate: float, streams: int, batch: int
) -> dict[str, Any]:
    token = await _start_token(server)
    calls = [guid() for _ in range(100)]
    posted = await ctx.run_load(
        "post",
        {
            "urls": [url],
            "token": ctx.notif_token,
            "rate": rate,
            "seconds": events / rate,
            "call_ids": calls,
        },
    )
    accepted = posted["statuses"].get("202", 0)
    expect = accepted * streams
    sub = ctx.load(
        "subscribe",
        {
            "targets": [server.target],
            "call_ids": calls,
            "streams": streams,
            "channels": 1,
            "per_call": False,
            "expect": expect,
            "drain_s": 120,
            "max_events_per_response": batch,
            "resume_token": token,
        },
    )
    cpu0, cores0 = server.cpu(), core_times()
    started = time.time_ns()
    await sub.start(stdin=True)
    sub.close_stdin()  # nothing more is posted: read until every event came, or 120 s
    try:
        got = await sub.result(180)
    finally:
        sub.kill()
    cpu, cores1 = server.cpu() - cpu0, core_times()
    wall = max(1e-9, (time.time_ns() - started) / 1e9)
    received = max(1, got["received"])
    reading = max(1e-9, (got["last_ns"] - got["first_ns"]) / 1e9)
    return {
        "received": got["received"],
        "expected": expect,
        "messages": got["messages"],
        "statuses": posted["statuses"],
        "deliveries_per_s": got["received"] / reading,
        "cpu_us_per_delivered": cpu / received * 1e6,
        "server_share": cpu / wall / len(ctx.topo.server) * 100,
        "server_core": busy(cores0, cores1, ctx.topo.server) * 100,
        "rest_core": busy(cores0, cores1, ctx.topo.rest) * 100,
    }


async def catch_up(ctx: Ctx) -> Result:
    res = Result("catch_up", "4c. Catch-up: subscribers resuming behind a backlog")
    events, rate = ctx.count(10_000, 500), ctx.secs(2_000, 500)
    streams = ctx.count(20, 4)
    gw = ctx.gateway("gw-catchup", ctx.env())
    bare = ctx.bare("bare-catchup")
    variants: list[tuple[str, Server, str, int]] = [
        ("gateway", gw, gw.url(), 1),
        (f"gateway, batches of {BATCH}", gw, gw.url(), BATCH),
        ("bare", bare, bare.url("/api/fanout"), 1),
        (f"bare, batches of {BATCH}", bare, bare.url("/api/fanout"), BATCH),
    ]
    runs: dict[str, list[dict[str, Any]]] = {}
    async with running(gw, bare):
        for r in range(ctx.rounds):
            for name, server, url, k in in_turn(variants, r):
                runs.setdefault(name, []).append(
                    await _run(ctx, server, url, events=events, rate=rate, streams=streams, batch=k)
                )
    gwb, bareb = f"gateway, batches of {BATCH}", f"bare, batches of {BATCH}"
    metric, cpu = "server CPU per delivered event (µs)", "4c catch-up CPU"
    res.rows += batched_cpu_rows(cpu, (gwb, runs[gwb]), runs["gateway"], runs["bare"])
    res.rows += [
        compare(
            cpu,
            f"{metric}: {gwb} vs gateway (one message per event)",
            "µs",
            runs[gwb],
            runs["gateway"],
            "cpu_us_per_delivered",
        ),
        compare(
            cpu,
            f"{metric}: {bareb} vs bare (one message per event)",
            "µs",
            runs[bareb],
            runs["bare"],
            "cpu_us_per_delivered",
        ),
    ]
    sc, rc = ",".join(map(str, ctx.topo.server)), ",".join(map(str, ctx.topo.rest))
    res.lines += [
        f"Each run takes a START bookmark's resume token, posts a backlog of {events:,} signed "
        f"notifications (one per POST, {rate:,.0f} POSTs/s, 100 calls, no stream open), then "
        f"opens {streams} WatchOperations streams of everything on one channel with that token "
        "and reads until every event has come to every stream. Server CPU is read around the "
        "reading part only (from the subscriber process's start to its end): delivery without "
        "ingest. deliveries/s = events received / time from the first event received to the "
        "last. The variants in turn "
        f"({', '.join(v[0] for v in variants)}), {ctx.rounds} round"
        f"{'s' if ctx.rounds > 1 else ''}; the bare server replays its pre-serialised messages "
        "(one per event, or what is queued as one batch message).",
        "",
        "| run | runs | backlog x streams | delivered / expected | events per message | "
        f"deliveries/s | server CPU µs per delivered event | core {sc} busy %: the server / "
        f"anything else | core {rc} busy % | POST statuses |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, rs in runs.items():
        delivered, per_msg, statuses, others = delivery_cells(rs)
        res.lines.append(
            f"| {name} | {len(rs)} | {events:,} x {streams} | {delivered} | {per_msg} | "
            f"{spread(col(rs, 'deliveries_per_s'))} | {spread(col(rs, 'cpu_us_per_delivered'))} | "
            f"{spread(col(rs, 'server_share'), 0)} / {spread(others, 0)} | "
            f"{spread(col(rs, 'rest_core'), 0)} | {statuses} |"
        )
    return res
