"""Load generators, each run as its own process: `python -m bench._load MODE SPEC_FILE`.

Every mode is bounded in count and time, talks to 127.0.0.1 only and writes its result as
JSON to `spec["out"]`. Latencies are in milliseconds.

Modes:
  cancel_seq   sequential CancelMediaProcessing through the gateway, interleaved in blocks with
               the same Graph request sent directly with a bare httpx client;
  cancel_conc  N cancels in flight for a fixed time, through the gateway (gRPC) or directly to
               the emulator (aiohttp);
  ingest       signed notification POSTs, N in flight, for a fixed time;
  subscribe    open N WatchOperations streams, print READY once every one is registered, then
               record webhook-to-subscriber latency of each event until all expected
               arrived or stdin closes (posting done) plus drain_s; or, with idle, hold the
               streams until stdin closes (the memory scenario);
  post         signed notification POSTs at a fixed rate (open loop), timestamped in
               clientContext, to one or several webhooks in turn;
  media_cpu    sequential CancelMediaProcessing and PlayPrompt through the gateway in
               alternating blocks, reading the gateway's CPU time around each block.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
import time
from typing import Any

import aiohttp
import grpc

from bench._common import BodyTemplate, cpu_seconds
from graphcomms.v1 import calls_pb2, calls_pb2_grpc

Spec = dict[str, Any]

CANCEL_PATH = "/v1.0/communications/calls/{}/cancelMediaProcessing"


def _ssl(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


def _graph_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


async def cancel_seq(spec: Spec) -> dict[str, Any]:
    import httpx

    calls: list[str] = spec["call_ids"]
    n, block, warmup = int(spec["n"]), int(spec["block"]), int(spec["warmup"])
    url = spec["graph_url"] + CANCEL_PATH
    headers = _graph_headers(spec["token"])
    body = b'{"clientContext":"bench"}'
    gw: list[float] = []
    direct: list[float] = []
    async with (
        grpc.aio.insecure_channel(spec["target"]) as ch,
        httpx.AsyncClient(verify=_ssl(spec["ca"]), timeout=10) as http,
    ):
        stub = calls_pb2_grpc.CallsServiceStub(ch)

        async def via_gateway(i: int) -> float:
            t = time.perf_counter()
            await stub.CancelMediaProcessing(
                calls_pb2.CancelMediaProcessingRequest(
                    call_id=calls[i % len(calls)], client_context="bench"
                ),
                timeout=10,
            )
            return (time.perf_counter() - t) * 1000

        async def direct_(i: int) -> float:
            t = time.perf_counter()
            r = await http.post(url.format(calls[i % len(calls)]), content=body, headers=headers)
            r.raise_for_status()
            r.json()
            return (time.perf_counter() - t) * 1000

        for i in range(warmup):
            await via_gateway(i)
            await direct_(i)
        deadline = time.monotonic() + float(spec["max_seconds"])
        i = 0
        first_gateway = True
        while len(gw) < n and time.monotonic() < deadline:
            order = (via_gateway, direct_) if first_gateway else (direct_, via_gateway)
            first_gateway = not first_gateway
            for fn in order:
                out = gw if fn is via_gateway else direct
                for _ in range(block):
                    out.append(await fn(i))
                    i += 1
    return {"gateway": gw, "direct": direct}


async def cancel_conc(spec: Spec) -> dict[str, Any]:
    calls: list[str] = spec["call_ids"]
    conc, seconds = int(spec["concurrency"]), float(spec["seconds"])
    lat: list[float] = []
    errors: dict[str, int] = {}
    counter = 0

    if spec["mode"] == "grpc":
        ch = grpc.aio.insecure_channel(spec["target"])
        stub = calls_pb2_grpc.CallsServiceStub(ch)

        async def one(i: int) -> None:
            await stub.CancelMediaProcessing(
                calls_pb2.CancelMediaProcessingRequest(
                    call_id=calls[i % len(calls)], client_context="bench"
                ),
                timeout=30,
            )

        async def close() -> None:
            await ch.close()
    else:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=_ssl(spec["ca"]), limit=max(conc, 1)),
            headers=_graph_headers(spec["token"]),
        )
        url = spec["graph_url"] + CANCEL_PATH
        body = b'{"clientContext":"bench"}'

        async def one(i: int) -> None:
            async with session.post(url.format(calls[i % len(calls)]), data=body) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")

        async def close() -> None:
            await session.close()

    # Warm the connections (TLS handshakes, HTTP/2) before the clock starts.
    await asyncio.gather(*(one(i) for i in range(conc)), return_exceptions=True)
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            counter += 1
            t = time.perf_counter()
            try:
                await one(counter)
            except Exception as exc:
                key = type(exc).__name__
                if isinstance(exc, grpc.aio.AioRpcError):
                    key = exc.code().name
                errors[key] = errors.get(key, 0) + 1
                continue
            lat.append((time.perf_counter() - t) * 1000)

    await asyncio.gather(*(worker() for _ in range(conc)))
    elapsed = time.perf_counter() - started
    await close()
    return {"latencies": lat, "elapsed": elapsed, "ok": len(lat), "errors": errors}


async def ingest(spec: Spec) -> dict[str, Any]:
    calls: list[str] = spec["call_ids"]
    conc, seconds = int(spec["concurrency"]), float(spec["seconds"])
    tmpl = BodyTemplate()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {spec['token']}"}
    lat: list[float] = []
    statuses: dict[str, int] = {}
    n = 0
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=conc), headers=headers
    ) as session:
        url = spec["url"]
        for i in range(conc):  # warm the connections
            async with session.post(url, data=tmpl.body(calls[i % len(calls)])[0]) as r:
                await r.read()
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal n
            while time.perf_counter() < deadline:
                n += 1
                body = tmpl.body(calls[n % len(calls)])[0]
                t = time.perf_counter()
                async with session.post(url, data=body) as r:
                    await r.read()
                    status = r.status
                lat.append((time.perf_counter() - t) * 1000)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

        await asyncio.gather(*(worker() for _ in range(conc)))
        elapsed = time.perf_counter() - started
    return {"latencies": lat, "elapsed": elapsed, "statuses": statuses}


async def subscribe(spec: Spec) -> dict[str, Any]:
    calls: list[str] = spec["call_ids"]
    streams, channels = int(spec["streams"]), max(1, int(spec["channels"]))
    expect = int(spec.get("expect", 0))
    per_call = bool(spec["per_call"])
    chans = [
        grpc.aio.insecure_channel(
            spec["targets"][i % len(spec["targets"])],
            options=[("grpc.use_local_subchannel_pool", 1)],
        )
        for i in range(channels)
    ]
    lat: list[float] = []
    received = 0
    last_ns = 0
    ready = 0
    all_ready = asyncio.Event()
    done = asyncio.Event()
    calls_opened: list[grpc.aio.UnaryStreamCall[Any, Any]] = []

    async def one(i: int) -> None:
        nonlocal received, ready, last_ns
        stub = calls_pb2_grpc.CallsServiceStub(chans[i % channels])
        req = calls_pb2.WatchOperationsRequest(call_ids=[calls[i]] if per_call else [])
        call = stub.WatchOperations(req)
        calls_opened.append(call)
        ready += 1
        if ready == streams:
            all_ready.set()
        async for r in call:
            if r.WhichOneof("kind") != "event":
                continue
            now = time.time_ns()
            ctx = r.event.operation_update.operation.client_context
            lat.append((now - int(ctx)) / 1e6)
            received += 1
            last_ns = now
            if expect and received >= expect:
                done.set()

    tasks = []
    for i in range(streams):
        tasks.append(asyncio.create_task(one(i)))
        if i % 200 == 199:
            await asyncio.sleep(0)  # let streams start in batches
    try:
        async with asyncio.timeout(float(spec.get("ready_timeout", 120))):
            await all_ready.wait()
    except TimeoutError:
        print(f"NOT READY {ready}/{streams}", flush=True)
        raise
    # Every stream is opened; the driver waits until the server counts them all.
    print("READY", flush=True)
    if spec.get("idle"):
        # Hold the streams until the driver closes our stdin.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    else:
        # Until every expected event arrived, or the driver closed stdin (the poster finished)
        # and `drain_s` more went by: events still in flight when posting ends are waited for,
        # so a slow gateway shows as latency, not as events missing.
        loop = asyncio.get_running_loop()
        posted = loop.run_in_executor(None, sys.stdin.read)
        finished = asyncio.ensure_future(done.wait())
        await asyncio.wait({posted, finished}, return_when=asyncio.FIRST_COMPLETED)
        if not done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(float(spec["drain_s"])):
                    await finished
        finished.cancel()
    for c in calls_opened:
        c.cancel()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for ch in chans:
        await ch.close(grace=None)
    return {"latencies": lat, "received": received, "last_ns": last_ns}


async def post(spec: Spec) -> dict[str, Any]:
    calls: list[str] = spec["call_ids"]
    urls: list[str] = spec["urls"]
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    total = int(rate * seconds)
    tmpl = BodyTemplate()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {spec['token']}"}
    statuses: dict[str, int] = {}
    sem = asyncio.Semaphore(int(spec.get("max_in_flight", 256)))
    lag: list[float] = []
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=int(spec.get("max_in_flight", 256))),
        headers=headers,
    ) as session:

        async def send(i: int) -> None:
            try:
                call = calls[i % len(calls)]
                body, ts = tmpl.body(call)
                hdrs = {"x-call": call, "x-ts": ts}
                async with session.post(urls[i % len(urls)], data=body, headers=hdrs) as r:
                    await r.read()
                    key = str(r.status)
            except aiohttp.ClientError as exc:
                key = type(exc).__name__
            finally:
                sem.release()
            statuses[key] = statuses.get(key, 0) + 1

        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        started = loop.time()
        started_ns = time.time_ns()
        for i in range(total):
            due = started + i / rate
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                lag.append((now - due) * 1000)
            await sem.acquire()
            t = asyncio.create_task(send(i))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        send_elapsed = loop.time() - started
        if tasks:
            await asyncio.wait(tasks, timeout=30)
    return {
        "sent": total,
        "send_elapsed": send_elapsed,
        "started_ns": started_ns,
        "statuses": statuses,
        "max_send_lag_ms": max(lag) if lag else 0.0,
    }


async def media_cpu(spec: Spec) -> dict[str, Any]:
    from graphcomms.v1 import call_types_pb2

    calls: list[str] = spec["call_ids"]
    pid, n, rounds = int(spec["pid"]), int(spec["n"]), int(spec["rounds"])
    prompt = call_types_pb2.MediaInfo(uri="https://cdn.example/bench.wav")
    out: dict[str, list[float]] = {"cancel_us": [], "play_us": [], "cancel_ms": [], "play_ms": []}
    async with grpc.aio.insecure_channel(spec["target"]) as ch:
        stub = calls_pb2_grpc.CallsServiceStub(ch)

        async def cancel(i: int) -> None:
            await stub.CancelMediaProcessing(
                calls_pb2.CancelMediaProcessingRequest(
                    call_id=calls[i % len(calls)], client_context="bench"
                ),
                timeout=10,
            )

        async def play(i: int) -> None:
            await stub.PlayPrompt(
                calls_pb2.PlayPromptRequest(
                    call_id=calls[i % len(calls)], prompts=[prompt], client_context="bench"
                ),
                timeout=10,
            )

        for i in range(20):  # warm-up
            await cancel(i)
            await play(i)
        for r in range(rounds):
            order = ((cancel, "cancel"), (play, "play"))
            for fn, name in order if r % 2 == 0 else order[::-1]:
                c0 = cpu_seconds(pid)
                for i in range(n):
                    t = time.perf_counter()
                    await fn(i)
                    out[f"{name}_ms"].append((time.perf_counter() - t) * 1000)
                out[f"{name}_us"].append((cpu_seconds(pid) - c0) / n * 1e6)
    return out


MODES = {
    "media_cpu": media_cpu,
    "cancel_seq": cancel_seq,
    "cancel_conc": cancel_conc,
    "ingest": ingest,
    "subscribe": subscribe,
    "post": post,
}


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        spec: Spec = json.load(f)
    if spec.get("uvloop"):
        import uvloop

        result = uvloop.run(MODES[mode](spec))
    else:
        result = asyncio.run(MODES[mode](spec))
    with open(spec["out"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
