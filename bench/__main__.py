"""`python -m bench [--smoke] [--only SCENARIO[,SCENARIO]] [--out DIR] [--no-profile]
[--rounds N] [--no-pin] [--ab REV]`.

Runs each scenario and its floor interleaved in the same run on this machine (the server under
test pinned to a core of its own) and writes `report.md` and PNG plots to bench/results/ (or
--out). With `--ab REV`, runs the chosen scenarios with the gateway of git revision REV against
the working tree's gateway instead, and writes `ab-REV.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import logging
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from importlib import metadata
from typing import Any

from bench import _report
from bench._ab import worktree
from bench._ctx import Ctx, Result, Row, ratio_cell, spread
from bench._pin import Topology, core_times, steal
from bench._scenarios import AB_SCENARIOS, SCENARIOS, setup
from commsgw.emulator import Emulator, EmulatorConfig

HERE = pathlib.Path(__file__).resolve().parent

TOPOLOGY = [
    "## Topology",
    "",
    "Everything on this one machine, over 127.0.0.1 only:",
    "",
    "- **driver** (`python -m bench`): starts every other process and hosts the Graph "
    "emulator (HTTPS, aiohttp) on its event loop; it does nothing else while a load runs.",
    "- **server under test**, one at a time in the measured runs: a gateway (`python -m "
    "commsgw serve`, configured by environment: in-memory event log unless stated; "
    "`COMMSGW_WEBHOOK_RATE` lifted because the load comes from one source address; stream "
    "limits raised to 20,000 for the memory scenario; INFO logging to a file as in "
    "production), or a floor or bare server in its turn. Servers not being measured stay up, "
    "idle, on the same core.",
    "- **floors** (`bench._floors`, `bench._bare`): what the same work costs bare on the "
    "gateway's stack (grpc.aio + aiohttp on one uvloop loop, one process): for cancel, a bare "
    "grpc.aio unary handler making one HTTPS request to the emulator with the gateway's "
    "client stack (a plain aiohttp client session, which the gateway uses directly), and the "
    "same through httpx over httpx-aiohttp's AiohttpTransport (the gateway's earlier stack) as "
    "a second line; for ingest, an aiohttp handler answering 202 after one "
    "PyJWT RS256 verification of the bearer token (the emulator's key, from its JWKS fetched "
    "once); for fan-out, the bare server decoding each POST's JSON and streaming one "
    "pre-serialised message per event (or a batch) to every matching stream.",
    "- **load generators**: `python -m bench._load MODE`, each its own process (gRPC clients, "
    "the webhook poster, the subscribers); a direct httpx / aiohttp client to the emulator is "
    "a path of the cancel load. Notification tokens are minted once with the emulator's "
    "`mint_notification_token` and reused within their lifetime.",
    "- **Redis** (3's Redis row, 6): the local redis-server on 127.0.0.1:6379.",
    "",
    "Runs interleave the gateway and its floor (A B, B A, A B, ...: the order reversed every "
    "other round, so that neither always goes first and a drift over the run cancels in the "
    "pairs); a figure is the median of the per-run figures, with (min-max) of those figures "
    "beside it; a ratio is the ratio of two medians from this same run, with the spread of the "
    "per-round ratios (round i of one side against round i of the other).",
]


def _machine() -> list[str]:
    cpu = ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for pkg in ("grpcio", "aiohttp", "httpx", "httpx-aiohttp", "msgspec", "uvloop", "redis"):
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{pkg} (absent)")
    commit = "unknown"
    with_changes = ""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=HERE.parent,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "service"],
            capture_output=True,
            text=True,
            cwd=HERE.parent,
        ).stdout.strip()
        with_changes = " (with uncommitted changes under service/)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        pass
    return [
        f"- machine: {os.cpu_count()} cores ({cpu or platform.processor()}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"- versions: {', '.join(versions)}",
        f"- commit: {commit}{with_changes}",
    ]


def _names(args: argparse.Namespace) -> list[str] | None:
    allowed = AB_SCENARIOS if args.ab else tuple(SCENARIOS)
    names = list(allowed)
    if args.only:
        wanted = [n.strip() for part in args.only for n in part.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in allowed]
        if unknown:
            what = "with --ab, " if args.ab else ""
            print(f"unknown scenario(s): {', '.join(unknown)}; {what}use {', '.join(allowed)}")
            return None
        names = [n for n in names if n in wanted]
    return names


async def run(args: argparse.Namespace, topo: Topology, workdir: pathlib.Path) -> int:
    names = _names(args)
    if names is None:
        return 2
    with contextlib.ExitStack() as stack:
        ab = stack.enter_context(worktree(args.ab, workdir)) if args.ab else None
        topo.pin_redis()
        stack.callback(topo.restore_redis)
        return await _run(args, topo, workdir, names, ab)


async def _run(
    args: argparse.Namespace,
    topo: Topology,
    workdir: pathlib.Path,
    names: list[str],
    ab: Any,
) -> int:
    out: pathlib.Path = args.out
    emu = Emulator(EmulatorConfig(port=0, state_dir=workdir / "emulator"))
    await emu.start()
    rounds = args.rounds or (1 if args.smoke else 5)
    ctx = Ctx(
        emu,
        workdir,
        args.smoke,
        topo,
        rounds,
        ab=ab,
        profile=not args.smoke and not args.no_profile and not ab,
        loop_lag=args.loop_lag,
    )
    results: list[Result] = []
    failed = 0
    started = time.perf_counter()
    try:
        await setup(ctx)
        for name in names:
            t = time.perf_counter()
            print(f"bench: {name} ...", flush=True)
            load_before = os.getloadavg()[0]
            cores_before = core_times()
            try:
                res = await SCENARIOS[name](ctx)
            except Exception as exc:
                failed += 1
                traceback.print_exc()
                res = Result(name, f"{name} (FAILED)")
                res.lines.append(f"The scenario failed: `{type(exc).__name__}: {exc}`"[:2000])
                res.rows.append(Row(name, "failed", "", [], [], "-", kind="max", limit=0))
            load = os.getloadavg()[0]
            cores_after = core_times()
            stolen = ", ".join(
                f"core {c} {steal(cores_before, cores_after, (c,)) * 100:.1f}%"
                for c in sorted(cores_after)
            )
            res.lines += [
                "",
                f"_Load average (1 min) before / after this scenario: {load_before:.2f} / "
                f"{load:.2f} on {os.cpu_count()} cores; steal time (the hypervisor running "
                f"someone else): {stolen}._",
            ]
            results.append(res)
            print(f"bench: {name} done in {time.perf_counter() - t:.1f} s", flush=True)
            for row in res.rows:
                print(
                    f"  {row.scenario}: {row.metric}: {spread(row.gw)} vs {spread(row.base)}, "
                    f"ratio {ratio_cell(row)}: {row.verdict.replace('**', '')}",
                    flush=True,
                )
    finally:
        await emu.stop()
    mode = (
        f"SMOKE run: a few seconds per scenario, {rounds} round{'s' if rounds > 1 else ''}, "
        "figures not meaningful"
        if args.smoke
        else f"full run, {rounds} rounds"
    )
    argv = " ".join(sys.argv[1:])
    header = [
        "# commsgw benchmarks" + (f": A/B against {ab.rev}" if ab else ""),
        "",
        f"Written by `python -m bench{' ' + argv if argv else ''}` on "
        f"{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} "
        f"({mode}, {time.perf_counter() - started:.0f} s).",
        "",
        *_machine(),
        *(f"- {side} imports: {where}" for side, where in ctx.code.items()),
        *(
            [f"- {ab.label}: commit {ab.sha[:12]}, checked out in a temporary worktree"]
            if ab
            else []
        ),
        "- load average (1, 5, 15 min) at the end: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (other sessions' test suites may share the machine)",
        "",
        "Per-run figures: latency p50 and p99 over the requests or events of one run, server "
        "CPU per operation = the server process's user + system time (/proc) over the run / "
        "operations; each figure below is the median over the runs with (min-max) of the "
        "per-run figures.",
        "",
        *TOPOLOGY,
        "",
        *topo.lines(),
    ]
    footer_path = HERE / "notes.md"
    footer = footer_path.read_text().splitlines() if footer_path.is_file() and not ab else []
    path = _report.write(
        results,
        out,
        header=header,
        profiles=ctx.profiles,
        footer=footer,
        ab=f"{ab.label} ({ab.sha[:12]})" if ab else None,
        filename=f"ab-{ab.rev.replace('/', '_')}.md" if ab else "report.md",
    )
    print(f"bench: report written to {path}")
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="a few seconds per scenario")
    p.add_argument(
        "--only", action="append", metavar="SCENARIO", help=f"one of {', '.join(SCENARIOS)}"
    )
    p.add_argument("--out", default=str(HERE / "results"), help="report folder")
    p.add_argument("--no-profile", action="store_true", help="do not run py-spy (full runs)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    p.add_argument(
        "--loop-lag",
        action="store_true",
        help="the gateways probe their event loop's lag and time GC pauses "
        "(COMMSGW_LOOP_LAG_PROBE_S); the fan-out scenario reports both histograms",
    )
    p.add_argument("--rounds", type=int, default=0, help="runs of each path (default 5, smoke 1)")
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin processes to cores (every process shares every core)",
    )
    p.add_argument(
        "--ab",
        metavar="REV",
        help="measure the gateway of git revision REV against the working tree's "
        f"(scenarios: {', '.join(AB_SCENARIOS)})",
    )
    args = p.parse_args()
    args.out = pathlib.Path(args.out).resolve()
    logging.basicConfig(level=logging.WARNING)
    # Tracing is the tracing scenario's to turn on: no OTEL_* setting of the caller leaks into
    # the gateways measured.
    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        del os.environ[name]
    # Pinned before anything starts threads or processes: they inherit the driver's core.
    topo = Topology.detect(pin=not args.no_pin)
    topo.pin_driver()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="commsgw-bench-"))
    try:
        return asyncio.run(run(args, topo, workdir))
    finally:
        if args.keep:
            print(f"bench: work directory (logs, raw results) kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
