"""Load generators, each run as its own process: `python -m bench._load MODE SPEC_FILE`.

Every mode is bounded in count and time, talks to 127.0.0.1 only and writes its result as
JSON to `spec["out"]`. Latencies are in milliseconds.

Modes:
  cancel_runs  CancelMediaProcessing through each of several paths in turn (a gateway or a
               floor over gRPC, or the same Graph request straight to the emulator with bare
               httpx or aiohttp), N in flight, for `rounds` rounds (A B C, C B A, ...), each run
               bounded by a count and a time; the server's and the emulator's CPU time (from
               /proc) and the cores' busy time are read around each run;
  ingest_runs  signed notification POSTs, N in flight, to each of several webhooks in turn,
               the same way;
  subscribe    open N WatchOperations streams (optionally asking for batches of up to
               max_events_per_response events per message), print READY once every one is
               registered, then record webhook-to-subscriber latency of each event (each event
               of a batch timed at its message's arrival) until all expected arrived or stdin
               closes (posting done) plus drain_s; or, with idle, hold the streams until stdin
               closes (the memory scenario);
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
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import grpc

from bench._common import BodyTemplate, cpu_seconds, in_turn
from bench._pin import core_times
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


def _cpu(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


async def _timed_run(
    one: Callable[[int], Awaitable[str]],
    *,
    concurrency: int,
    n: int,
    seconds: float,
    pids: dict[str, int | None],
) -> dict[str, Any]:
    """`concurrency` workers calling `one` until `n` calls were made (0: no count bound) or
    `seconds` passed; each process's CPU in `pids` and the cores' busy time read around it.
    `one` returns a status key (counted); an exception counts as an error."""
    lat: list[float] = []
    errors: dict[str, int] = {}
    statuses: dict[str, int] = {}
    counter = 0
    cpu0 = {k: _cpu(pid) for k, pid in pids.items()}
    own0 = time.process_time()
    cores0 = core_times()
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal counter
        while time.perf_counter() < deadline and (not n or counter < n):
            counter += 1
            t = time.perf_counter()
            try:
                key = await one(counter)
            except Exception as exc:
                name = type(exc).__name__
                if isinstance(exc, grpc.aio.AioRpcError):
                    name = exc.code().name
                errors[name] = errors.get(name, 0) + 1
                continue
            lat.append((time.perf_counter() - t) * 1000)
            statuses[key] = statuses.get(key, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cores1 = core_times()
    cpu = {k: _cpu(pid) - cpu0[k] for k, pid in pids.items()}
    cpu["load"] = time.process_time() - own0
    return {
        "latencies": lat,
        "ok": len(lat),
        "errors": errors,
        "statuses": statuses,
        "elapsed": elapsed,
        "cpu": cpu,
        "cores": {str(c): [cores0[c], cores1[c]] for c in cores1},
    }


async def _rounds(
    spec: Spec, clients: dict[str, Callable[[int], Awaitable[str]]]
) -> dict[str, Any]:
    """Every path of `spec["paths"]` run in turn, `rounds` times, the order reversed every
    other round (A B C, C B A, A B C, ...): one record per run, with its latencies."""
    conc, rounds = int(spec["concurrency"]), int(spec["rounds"])
    n, seconds = int(spec.get("n", 0)), float(spec["seconds"])
    emulator = spec.get("emulator_pid")
    warmup = int(spec.get("warmup", conc))
    for p in spec["paths"]:  # warm every path's connections (TLS, HTTP/2) and code paths
        one = clients[p["name"]]
        for start in range(0, warmup, conc):
            await asyncio.gather(
                *(one(i) for i in range(start, min(warmup, start + conc))), return_exceptions=True
            )
    runs: list[dict[str, Any]] = []
    for r in range(rounds):
        for p in in_turn(spec["paths"], r):
            # Warm again, untimed: a server's idle pooled connections to Graph expire (httpx's
            # default keep-alive expiry, 5 s) while the other paths run, and re-opening them
            # (TLS handshakes) belongs to no steady state.
            one = clients[p["name"]]
            await asyncio.gather(*(one(i) for i in range(conc)), return_exceptions=True)
            res = await _timed_run(
                clients[p["name"]],
                concurrency=conc,
                n=n,
                seconds=seconds,
                pids={"server": p.get("pid"), "emulator": emulator},
            )
            runs.append({"round": r, "path": p["name"], **res})
    return {"runs": runs}


def _grpc_cancel(target: str, calls: list[str]) -> tuple[Callable[[int], Awaitable[str]], Any]:
    ch = grpc.aio.insecure_channel(target)
    stub = calls_pb2_grpc.CallsServiceStub(ch)

    async def one(i: int) -> str:
        await stub.CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(
                call_id=calls[i % len(calls)], client_context="bench"
            ),
            timeout=30,
        )
        return "OK"

    return one, ch.close


async def cancel_runs(spec: Spec) -> dict[str, Any]:
    """Cancels through each path of `spec["paths"]`: `grpc` (a gateway or a floor server),
    `httpx` (a bare httpx AsyncClient straight to the emulator) or `aiohttp` (a bare aiohttp
    client straight to the emulator)."""
    import httpx

    calls: list[str] = spec["call_ids"]
    url = spec["graph_url"] + CANCEL_PATH
    headers = _graph_headers(spec["token"])
    body = b'{"clientContext":"bench"}'
    conc = int(spec["concurrency"])
    clients: dict[str, Callable[[int], Awaitable[str]]] = {}
    closers: list[Callable[[], Awaitable[Any]]] = []
    for p in spec["paths"]:
        if p["kind"] == "grpc":
            one, close = _grpc_cancel(p["target"], calls)
        elif p["kind"] == "httpx":
            http = httpx.AsyncClient(
                verify=_ssl(spec["ca"]),
                timeout=30,
                limits=httpx.Limits(max_connections=max(conc, 10)),
            )

            async def one(i: int, http: httpx.AsyncClient = http) -> str:
                r = await http.post(
                    url.format(calls[i % len(calls)]), content=body, headers=headers
                )
                r.raise_for_status()
                r.json()
                return "200"

            close = http.aclose
        else:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=_ssl(spec["ca"]), limit=max(conc, 1)),
                headers=headers,
            )

            async def one(i: int, session: aiohttp.ClientSession = session) -> str:
                async with session.post(url.format(calls[i % len(calls)]), data=body) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"HTTP {r.status}")
                return "200"

            close = session.close
        clients[p["name"]] = one
        closers.append(close)
    try:
        return await _rounds(spec, clients)
    finally:
        for close in closers:
            await close()


async def ingest_runs(spec: Spec) -> dict[str, Any]:
    """Signed notification POSTs (one notification each, unique operation ids, so none is a
    duplicate), `concurrency` in flight, to each path's webhook in turn; all with the same
    token, or the path's own `tokens` in turn."""
    calls: list[str] = spec["call_ids"]
    conc = int(spec["concurrency"])
    tmpl = BodyTemplate()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {spec['token']}"}
    clients: dict[str, Callable[[int], Awaitable[str]]] = {}
    sessions = []
    for p in spec["paths"]:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc), headers=headers)
        sessions.append(session)

        tokens: list[str] = p.get("tokens") or []

        async def one(
            i: int,
            session: aiohttp.ClientSession = session,
            url: str = p["url"],
            tokens: list[str] = tokens,
        ) -> str:
            # A path with its own tokens sends them in turn (one per POST).
            hdrs = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"} if tokens else None
            body = tmpl.body(calls[i % len(calls)])[0]
            async with session.post(url, data=body, headers=hdrs) as r:
                await r.read()
                return str(r.status)

        clients[p["name"]] = one
    try:
        return await _rounds(spec, clients)
    finally:
        for session in sessions:
            await session.close()


async def subscribe(spec: Spec) -> dict[str, Any]:
    calls: list[str] = spec["call_ids"]
    streams, channels = int(spec["streams"]), max(1, int(spec["channels"]))
    expect = int(spec.get("expect", 0))
    per_call = bool(spec["per_call"])
    batch = int(spec.get("max_events_per_response", 1))
    chans = [
        grpc.aio.insecure_channel(
            spec["targets"][i % len(spec["targets"])],
            options=[("grpc.use_local_subchannel_pool", 1)],
        )
        for i in range(channels)
    ]
    lat: list[float] = []
    received = 0
    messages = 0
    first_ns = last_ns = 0
    ready = 0
    all_ready = asyncio.Event()
    done = asyncio.Event()
    calls_opened: list[grpc.aio.UnaryStreamCall[Any, Any]] = []

    async def one(i: int) -> None:
        nonlocal received, ready, first_ns, last_ns, messages
        stub = calls_pb2_grpc.CallsServiceStub(chans[i % channels])
        req = calls_pb2.WatchOperationsRequest(
            call_ids=[calls[i]] if per_call else [],
            max_events_per_response=batch,
            resume_token=spec.get("resume_token", ""),
        )
        call = stub.WatchOperations(req)
        calls_opened.append(call)
        ready += 1
        if ready == streams:
            all_ready.set()
        async for r in call:
            # Each event of a batch is counted, and timed at the arrival of its message.
            events = r.batch if r.batch else (r,) if r.WhichOneof("kind") == "event" else ()
            if not events:
                continue
            now = time.time_ns()
            messages += 1
            for e in events:
                ctx = e.event.operation_update.operation.client_context
                lat.append((now - int(ctx)) / 1e6)
            received += len(events)
            first_ns = first_ns or now
            last_ns = now
            if expect and received >= expect and not done.is_set():
                done.set()
                print("DONE", flush=True)  # the driver reads the servers' CPU now

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
    return {
        "latencies": lat,
        "received": received,
        "messages": messages,
        "first_ns": first_ns,
        "last_ns": last_ns,
    }


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
            if i == 0:
                print("FIRST", flush=True)  # the driver starts its CPU reading now
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
    cancel, close = _grpc_cancel(spec["target"], calls)
    async with grpc.aio.insecure_channel(spec["target"]) as ch:
        stub = calls_pb2_grpc.CallsServiceStub(ch)

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
    await close()
    return out


MODES = {
    "media_cpu": media_cpu,
    "cancel_runs": cancel_runs,
    "ingest_runs": ingest_runs,
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
