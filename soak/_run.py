"""The soak: one gateway process, steady cancels, notifications and subscriber churn.

The Graph emulator runs in this process; the gateway is `python -m commsgw serve` (its own
process, memory or Redis event log). Workloads, all at once for `--minutes`:

* a poster: signed commsNotifications POSTed to the webhook, one POST at a time, each with a
  few operation updates of one of `--calls` calls (what Graph does);
* cancels: an emulator call with a queued prompt, cancelled through the gateway; the emulator
  then calls the gateway's webhook back, like Graph;
* subscribers: some watch a couple of calls, some every call of the tenant; each disconnects
  after a random while and resumes with its last resume_token (on a new channel every other
  time); two steady subscribers never churn and give the end-to-end latency;
* a sampler: the gateway process's RSS, open file descriptors and threads (/proc), its event
  loop's tasks and open watch streams (/metrics), every `--sample-s` seconds.

At the end a loss checker compares, for every subscriber, what it received with every event
answered 202 that matches its filter: in order, none missing, none twice. The report
(report.md and PNG plots) goes to `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import random
import ssl
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from commsgw.emulator import Emulator, EmulatorConfig
from commsgw.testing import GatewayProcess
from graphcomms.v1 import calls_pb2, calls_pb2_grpc

TENANT = "00000000-0000-0000-0000-00000000500a"


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def metric(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return 0.0


# --- bookkeeping -----------------------------------------------------------------------------


@dataclass
class Posted:
    op_id: str
    call_id: str
    sent_at: float


@dataclass
class Subscriber:
    name: str
    call_ids: list[str]  # empty: every call of the tenant
    churn: bool
    received: list[str] = field(default_factory=list)
    token: str = ""
    resumes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds)

    def request(self) -> calls_pb2.WatchOperationsRequest:
        return calls_pb2.WatchOperationsRequest(
            call_ids=self.call_ids,
            tenant_ids=[TENANT],
            resume_token=self.token,
            include_snapshot=not self.token,
        )


@dataclass
class Run:
    args: argparse.Namespace
    gateway: GatewayProcess
    emulator: Emulator
    calls: list[str]
    posted: list[Posted] = field(default_factory=list)
    by_op: dict[str, Posted] = field(default_factory=dict)
    post_status: dict[int, int] = field(default_factory=dict)
    post_latency: list[tuple[float, float]] = field(default_factory=list)
    cancel_codes: dict[str, int] = field(default_factory=dict)
    cancel_latency: list[tuple[float, float]] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)
    cancel_watch: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.monotonic() - self.started


def op_note(call_id: str, op_id: str, seq: int) -> dict[str, Any]:
    return {
        "changeType": "deleted",
        "resourceUrl": f"/communications/calls/{call_id}/operations/{op_id}",
        "resourceData": {
            "@odata.type": "#microsoft.graph.playPromptOperation",
            "id": op_id,
            "status": "completed",
            "clientContext": f"soak-{seq}",
            "resultInfo": {"code": 200, "subcode": 0, "message": "Success."},
        },
    }


async def poster(run: Run) -> None:
    interval = 1.0 / run.args.posts_per_s
    seq = 0
    async with httpx.AsyncClient(timeout=30) as http:
        token, minted = "", 0.0
        next_at = time.monotonic()
        while not run.stop.is_set():
            if time.monotonic() - minted > 60:  # Graph reuses a token for a while
                token = run.emulator.mint_notification_token(tenant_id=TENANT)
                minted = time.monotonic()
            call_id = random.choice(run.calls)
            ops = [str(uuid.uuid4()) for _ in range(run.args.notes_per_post)]
            seq += 1
            body = json.dumps({"value": [op_note(call_id, o, seq) for o in ops]})
            sent = time.monotonic()
            for o in ops:
                run.by_op[o] = Posted(o, call_id, sent)
            try:
                r = await http.post(
                    run.gateway.webhook,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {token}",
                    },
                )
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            run.post_status[status] = run.post_status.get(status, 0) + 1
            run.post_latency.append((run.now(), time.monotonic() - sent))
            if status == 202:
                run.posted.extend(run.by_op[o] for o in ops)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def canceller(run: Run) -> None:
    emu = run.emulator
    interval = 1.0 / run.args.cancels_per_s
    graph = httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=str(emu.ca_path)),
        base_url=emu.graph_url,
        timeout=30,
    )
    async with graph, grpc.aio.insecure_channel(run.gateway.target) as ch:
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        next_at = time.monotonic()

        async def one() -> None:
            headers = {"Authorization": f"Bearer {emu.issue_access_token()}"}
            r = await graph.post(
                "/communications/calls",
                json={"@odata.type": "#microsoft.graph.call", "callbackUri": run.gateway.webhook},
                headers=headers,
            )
            call_id = r.json()["id"]
            await graph.post(
                f"/communications/calls/{call_id}/playPrompt",
                json={
                    "clientContext": "soak",
                    "prompts": [
                        {
                            "@odata.type": "#microsoft.graph.mediaPrompt",
                            "mediaInfo": {"uri": "https://cdn.example/p.wav"},
                        }
                    ],
                },
                headers=headers,
            )
            t0 = time.monotonic()
            try:
                await stub.CancelMediaProcessing(
                    calls_pb2.CancelMediaProcessingRequest(call_id=call_id, client_context="soak"),
                    timeout=10,
                )
                code = "OK"
            except grpc.aio.AioRpcError as err:
                code = err.code().name
            run.cancel_latency.append((run.now(), time.monotonic() - t0))
            run.cancel_codes[code] = run.cancel_codes.get(code, 0) + 1
            await asyncio.sleep(1)
            await graph.delete(f"/communications/calls/{call_id}", headers=headers)

        pending: set[asyncio.Task[None]] = set()
        while not run.stop.is_set():
            t = asyncio.create_task(one())
            pending.add(t)
            t.add_done_callback(pending.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def subscribe(run: Run, sub: Subscriber, ready: asyncio.Event) -> None:
    """Watch, churning (disconnect, resume with the last token) until the run stops and the
    subscriber has caught up."""
    ch = grpc.aio.insecure_channel(run.gateway.target)
    first = True
    try:
        while True:
            if run.stop.is_set() and sub.token and caught_up(run, sub):
                return
            lifetime = random.uniform(5, 30) if sub.churn else 1e9
            call = calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(sub.request())
            deadline = time.monotonic() + lifetime
            try:
                async for r in call:
                    sub.token = r.resume_token
                    if first:
                        first = False
                        ready.set()
                    if r.WhichOneof("kind") == "event":
                        op = r.event.operation_update.operation.id
                        sub.received.append(op)
                        p = run.by_op.get(op)
                        if p is not None and not sub.churn:
                            sub.latencies.append((run.now(), time.monotonic() - p.sent_at))
                    if time.monotonic() > deadline:
                        break
                    if run.stop.is_set() and caught_up(run, sub):
                        break
            except grpc.aio.AioRpcError as err:
                sub.errors[err.code().name] = sub.errors.get(err.code().name, 0) + 1
                if err.code() == grpc.StatusCode.OUT_OF_RANGE:
                    raise
            finally:
                call.cancel()
            sub.resumes += 1
            if sub.churn and random.random() < 0.5:
                await ch.close()
                ch = grpc.aio.insecure_channel(run.gateway.target)
            await asyncio.sleep(random.uniform(0, 1) if sub.churn else 0.05)
    finally:
        await ch.close()


def caught_up(run: Run, sub: Subscriber) -> bool:
    return len(sub.received) >= len(expected_for(run, sub))


def expected_for(run: Run, sub: Subscriber) -> list[str]:
    calls = set(sub.call_ids)
    return [p.op_id for p in run.posted if not calls or p.call_id in calls]


async def cancel_watcher(run: Run, ready: asyncio.Event) -> None:
    """Every operation the emulator reported for the cancels (any call of its tenant)."""
    tenant = run.emulator.config.tenant_id
    token = ""
    async with grpc.aio.insecure_channel(run.gateway.target) as ch:
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        while True:
            call = stub.WatchOperations(
                calls_pb2.WatchOperationsRequest(
                    tenant_ids=[tenant], resume_token=token, include_snapshot=not token
                )
            )
            try:
                async for r in call:
                    token = r.resume_token
                    ready.set()
                    if r.WhichOneof("kind") == "event":
                        run.cancel_watch.append(r.event.operation_update.operation.id)
                    if run.stop.is_set() and r.WhichOneof("kind") == "bookmark":
                        return
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
            finally:
                call.cancel()


async def sampler(run: Run) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            try:
                page = (await http.get(f"http://127.0.0.1:{run.gateway.http_port}/metrics")).text
                st = proc_status(run.gateway.pid)
            except (httpx.HTTPError, OSError):
                page, st = "", {}
            run.samples.append(
                {
                    "t": run.now(),
                    "rss_mb": st.get("VmRSS", 0) / 1024,
                    "fds": st.get("fds", 0),
                    "threads": st.get("Threads", 0),
                    "tasks": metric(page, "commsgw_asyncio_tasks"),
                    "streams": metric(page, "commsgw_subscribers"),
                }
            )
            if run.stop.is_set():
                return
            await asyncio.sleep(run.args.sample_s)


# --- the run ---------------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> Run:
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    state = pathlib.Path(tempfile.mkdtemp(prefix="commsgw-soak-"))
    emulator = Emulator(EmulatorConfig(port=0, state_dir=state / "emulator", media_op_seconds=30))
    await emulator.start()
    env = {
        "COMMSGW_EMULATOR_URL": emulator.base_url,
        "COMMSGW_CA_FILE": str(emulator.ca_path),
        "COMMSGW_LOG_LEVEL": "WARNING",
        "COMMSGW_BOOKMARK_INTERVAL_S": "2",
        "COMMSGW_EVENT_LOG_MAX_EVENTS": str(args.max_events),
    }
    prefix = f"commsgw-soak-{uuid.uuid4().hex[:8]}"
    if args.redis:
        env.update(COMMSGW_EVENT_LOG=args.redis, COMMSGW_EVENT_LOG_KEY=prefix)
    gateway = GatewayProcess(env, state / "gateway.log")
    await gateway.start()
    run = Run(args, gateway, emulator, [str(uuid.uuid4()) for _ in range(args.calls)])
    subs: list[Subscriber] = []
    for i in range(args.subscribers):
        wildcard = i % 4 == 0
        calls = [] if wildcard else random.sample(run.calls, 2)
        subs.append(Subscriber(f"sub-{i}", calls, churn=True))
    subs += [Subscriber("steady-0", [], churn=False), Subscriber("steady-1", [], churn=False)]
    readies = [asyncio.Event() for _ in subs]
    sub_tasks = [
        asyncio.create_task(subscribe(run, s, r)) for s, r in zip(subs, readies, strict=True)
    ]
    cw_ready = asyncio.Event()
    cw_task = asyncio.create_task(cancel_watcher(run, cw_ready))
    async with asyncio.timeout(60):
        for r in [*readies, cw_ready]:
            await r.wait()
    print(f"soak: {len(subs)} subscribers ready; running {args.minutes} min", flush=True)
    run.started = time.monotonic()
    sample_task = asyncio.create_task(sampler(run))
    workers = [asyncio.create_task(poster(run)), asyncio.create_task(canceller(run))]
    await asyncio.sleep(args.minutes * 60)
    run.stop.set()
    await asyncio.gather(*workers)
    await emulator.notifications_idle(30)
    # Let every subscriber catch up (each resumes from its token), then let the cancel
    # watcher see a bookmark.
    try:
        async with asyncio.timeout(120):
            await asyncio.gather(*sub_tasks)
    except TimeoutError:
        for t in sub_tasks:
            t.cancel()
    try:
        async with asyncio.timeout(30):
            await cw_task
    except TimeoutError:
        cw_task.cancel()
    await sample_task
    run.__dict__["subscribers"] = subs
    run.__dict__["exit_code"] = gateway.terminate(30)
    run.__dict__["delivered"] = [
        a for a in emulator.delivery_log if a.status is not None and 200 <= a.status < 300
    ]
    await emulator.stop()
    if args.redis:
        import redis.asyncio as aioredis

        r = aioredis.from_url(args.redis)
        keys = [k async for k in r.scan_iter(match=f"{prefix}*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()
    return run


# --- the report ------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def windows(points: Sequence[tuple[float, float]], width: float) -> list[tuple[float, list[float]]]:
    out: dict[int, list[float]] = {}
    for t, v in points:
        out.setdefault(int(t // width), []).append(v)
    return [(k * width + width / 2, vs) for k, vs in sorted(out.items())]


def loss_check(run: Run) -> dict[str, Any]:
    subs: list[Subscriber] = run.__dict__["subscribers"]
    missing = duplicates = out_of_order = unexpected = 0
    worst: list[str] = []
    for s in subs:
        want = expected_for(run, s)
        got = s.received
        want_set, got_set = set(want), set(got)
        m = len(want_set - got_set)
        d = len(got) - len(got_set)
        u = len(got_set - want_set)
        o = 0 if [x for x in got if x in want_set] == want else 1
        missing += m
        duplicates += d
        unexpected += u
        out_of_order += o if not m else 0
        if m or d or u or (o and not m):
            worst.append(f"{s.name}: missing {m}, duplicates {d}, unexpected {u}, order {o}")
    # Emulator callbacks for the cancels: every notification Graph (the emulator) delivered
    # with a 2xx answer reached the tenant-wide watcher.
    delivered_ops: set[str] = set()
    for a in run.__dict__["delivered"]:
        for n in a.payload.get("value", []):
            rd = n.get("resourceData") or {}
            if isinstance(rd, dict) and str(rd.get("@odata.type", "")).endswith("Operation"):
                delivered_ops.add(str(rd.get("id", "")).lower())
    cancel_missing = len(delivered_ops - set(run.cancel_watch))
    return {
        "subscribers": len(subs),
        "events_posted": len(run.posted),
        "deliveries_expected": sum(len(expected_for(run, s)) for s in subs),
        "deliveries_received": sum(len(s.received) for s in subs),
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "out_of_order_subscribers": out_of_order,
        "resumes": sum(s.resumes for s in subs),
        "stream_errors": _merge([s.errors for s in subs]),
        "cancel_callbacks_delivered": len(delivered_ops),
        "cancel_callbacks_missing": cancel_missing,
        "details": worst[:20],
    }


def _merge(ds: Sequence[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in ds:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def flatness(samples: list[dict[str, float]], key: str) -> tuple[float, float, float]:
    """(first, last, growth of the last quarter's mean over the second quarter's mean)."""
    vals = [s[key] for s in samples if s.get(key)]
    if len(vals) < 8:
        return (vals[0] if vals else 0.0, vals[-1] if vals else 0.0, 0.0)
    q = len(vals) // 4
    early = statistics.mean(vals[q : 2 * q])
    late = statistics.mean(vals[3 * q :])
    return vals[0], vals[-1], late - early


def write_report(run: Run, out: pathlib.Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [s for s in run.samples if s["rss_mb"]]
    t = [s["t"] / 60 for s in samples]
    figs = []
    for key, label, fname in (
        ("rss_mb", "RSS (MB)", "rss.png"),
        ("fds", "open file descriptors", "fds.png"),
        ("tasks", "asyncio tasks", "tasks.png"),
        ("threads", "threads", "threads.png"),
        ("streams", "open watch streams", "streams.png"),
    ):
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot(t, [s[key] for s in samples])
        ax.set_xlabel("minutes")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0, top=max([s[key] for s in samples] + [1]) * 1.3)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=90)
        plt.close(fig)
        figs.append(fname)
    subs: list[Subscriber] = run.__dict__["subscribers"]
    e2e = [p for s in subs if not s.churn for p in s.latencies]
    series = {
        "cancel RPC": run.cancel_latency,
        "webhook POST": run.post_latency,
        "notification end to end": e2e,
    }
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name, pts in series.items():
        w = windows(pts, 30)
        ax.plot([c / 60 for c, _ in w], [1000 * pct(v, 0.5) for _, v in w], label=f"{name} p50")
        ax.plot(
            [c / 60 for c, _ in w],
            [1000 * pct(v, 0.99) for _, v in w],
            linestyle="--",
            label=f"{name} p99",
        )
    ax.set_yscale("log")
    ax.set_xlabel("minutes")
    ax.set_ylabel("latency (ms), 30 s windows")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)
    plt.close(fig)
    figs.append("latency.png")

    loss = loss_check(run)
    rss = flatness(samples, "rss_mb")
    fds = flatness(samples, "fds")
    tasks = flatness(samples, "tasks")
    threads = flatness(samples, "threads")
    flat = rss[2] < 20 and fds[2] < 10 and tasks[2] < 20 and threads[2] < 3
    lossless = (
        loss["missing"] == 0
        and loss["duplicates"] == 0
        and loss["unexpected"] == 0
        and loss["out_of_order_subscribers"] == 0
        and loss["cancel_callbacks_missing"] == 0
    )
    ok = (
        flat
        and lossless
        and run.__dict__["exit_code"] == 0
        and set(run.post_status) == {202}
        and set(run.cancel_codes) == {"OK"}
    )
    a = run.args
    lines = [
        "# commsgw soak report",
        "",
        f"**Result: {'PASS' if ok else 'FAIL'}** — resources {'flat' if flat else 'NOT flat'}, "
        f"{'zero loss' if lossless else 'LOSS'}.",
        "",
        f"- duration: {a.minutes} min; event log: {a.redis or 'memory'}; "
        f"{a.posts_per_s} webhook POSTs/s x {a.notes_per_post} notifications over {a.calls} "
        f"calls; {a.cancels_per_s} cancels/s (each one calling the webhook back); "
        f"{len(subs)} subscribers ({sum(1 for s in subs if s.churn)} churning: reconnect every "
        "5-30 s with their last resume_token, a new channel every other time)",
        f"- event log retention: {a.max_events} events (COMMSGW_EVENT_LOG_MAX_EVENTS), full "
        "after the first minutes, so that its memory is steady",
        f"- gateway exit code on SIGTERM: {run.__dict__['exit_code']}",
        f"- webhook answers: {dict(sorted(run.post_status.items()))}; cancel results: "
        f"{run.cancel_codes}",
        "",
        "## Resources (gateway process)",
        "",
        "| | start | end | late-quarter mean minus second-quarter mean |",
        "|---|---|---|---|",
        f"| RSS (MB) | {rss[0]:.1f} | {rss[1]:.1f} | {rss[2]:+.1f} |",
        f"| open fds | {fds[0]:.0f} | {fds[1]:.0f} | {fds[2]:+.1f} |",
        f"| asyncio tasks | {tasks[0]:.0f} | {tasks[1]:.0f} | {tasks[2]:+.1f} |",
        f"| threads | {threads[0]:.0f} | {threads[1]:.0f} | {threads[2]:+.1f} |",
        "",
        "Flat means growth under 20 MB RSS, 10 fds, 20 tasks and 3 threads between the second "
        "and the last quarter of the run (the first quarter is warm-up: the in-memory log fills).",
        "",
        "## Latency",
        "",
        "| | count | p50 (ms) | p99 (ms) | max (ms) |",
        "|---|---|---|---|---|",
    ]
    for name, pts in series.items():
        v = [x for _, x in pts]
        lines.append(
            f"| {name} | {len(v)} | {1000 * pct(v, 0.5):.1f} | {1000 * pct(v, 0.99):.1f} | "
            f"{1000 * max(v, default=0):.1f} |"
        )
    lines += [
        "",
        "## Loss check",
        "",
        f"- events answered 202: {loss['events_posted']}; deliveries expected (event x matching "
        f"subscriber): {loss['deliveries_expected']}; received: {loss['deliveries_received']}",
        f"- missing: **{loss['missing']}**, duplicates: **{loss['duplicates']}**, unexpected: "
        f"{loss['unexpected']}, subscribers out of order: {loss['out_of_order_subscribers']}",
        f"- resumes: {loss['resumes']}; streams ended by the gateway: {loss['stream_errors']}",
        f"- emulator callbacks for the cancels (operation updates answered 2xx): "
        f"{loss['cancel_callbacks_delivered']}, missing at the tenant-wide watcher: "
        f"**{loss['cancel_callbacks_missing']}**",
        *(f"  - {d}" for d in loss["details"]),
        "",
        "## Plots",
        "",
        *(f"![{f}]({f})" for f in figs),
        "",
        f"Reproduce: `python -m soak --minutes {a.minutes:g}`"
        + (f" --redis {a.redis}" if a.redis else "")
        + " (or `make soak`).",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    (out / "samples.json").write_text(json.dumps({"samples": run.samples, "loss": loss}, indent=1))
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--redis", default="", help="redis://HOST:PORT/DB for a Redis event log")
    p.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results"))
    p.add_argument("--posts-per-s", type=float, default=20.0)
    p.add_argument("--notes-per-post", type=int, default=3)
    p.add_argument("--cancels-per-s", type=float, default=2.0)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--subscribers", type=int, default=40)
    p.add_argument("--sample-s", type=float, default=5.0)
    p.add_argument(
        "--max-events",
        type=int,
        default=10_000,
        help="COMMSGW_EVENT_LOG_MAX_EVENTS: small, so that the log is full (steady) early on",
    )
    args = p.parse_args(argv)
    run = asyncio.run(soak(args))
    ok = write_report(run, pathlib.Path(args.out))
    print((pathlib.Path(args.out) / "report.md").read_text())
    return 0 if ok else 1
