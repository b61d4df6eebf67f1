"""`python -m bench [--smoke] [--only SCENARIO[,SCENARIO]] [--out DIR] [--no-profile]`.

Runs each scenario and its baseline in the same run on this machine and writes
`report.md` and PNG plots to bench/results/ (or --out).
"""

from __future__ import annotations

import argparse
import asyncio
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

from bench import _report
from bench._scenarios import SCENARIOS, Ctx, Result, Row, setup
from commsgw.emulator import Emulator, EmulatorConfig

HERE = pathlib.Path(__file__).resolve().parent

TOPOLOGY = [
    "## Topology",
    "",
    "Everything on this one machine, over 127.0.0.1 only, sharing its cores:",
    "",
    "- **driver** (`python -m bench`): starts every other process and hosts the Graph "
    "emulator (HTTPS, aiohttp) on its event loop; it does nothing else while a load runs.",
    "- **gateway** under test: a separate `python -m commsgw serve` process per "
    "configuration, configured by environment (in-memory event log unless stated; "
    "`COMMSGW_WEBHOOK_RATE` lifted because the load comes from one source address; stream "
    "limits raised to 20,000 for the memory scenario; INFO logging to a file as in production).",
    "- **baselines**: a bare `httpx` / `aiohttp` client to the emulator (in a load process), "
    "and `bench._bare`, a separate process with the gateway's server stack (aiohttp webhook + "
    "grpc.aio on one asyncio loop) that does no work: 202 without reading JWT or JSON, and "
    "WatchOperations streams fed with one prebuilt message per POST.",
    "- **load generators**: `python -m bench._load MODE`, each its own process (gRPC clients, "
    "the webhook poster, the subscribers). In the fan-out scenarios the poster and the "
    "subscribers are two processes; tokens are minted once with the emulator's "
    "`mint_notification_token` and reused within their lifetime (so the gateway verifies the "
    "RS256 signature once and then serves the token from its verified-token cache, checking "
    "exp/nbf and key on every POST).",
    "- **Redis** (scenario 6): the local redis-server on 127.0.0.1:6379.",
    "",
    "Gateway and baseline are measured in the same run, back to back (or interleaved in "
    "blocks for scenario 1); a ratio compares the two from this run only.",
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


async def run(args: argparse.Namespace) -> int:
    out: pathlib.Path = args.out
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="commsgw-bench-"))
    names = list(SCENARIOS)
    if args.only:
        wanted = [n.strip() for part in args.only for n in part.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in SCENARIOS]
        if unknown:
            print(f"unknown scenario(s): {', '.join(unknown)}; use {', '.join(SCENARIOS)}")
            return 2
        names = [n for n in names if n in wanted]
    emu = Emulator(EmulatorConfig(port=0, state_dir=workdir / "emulator"))
    await emu.start()
    ctx = Ctx(emu, workdir, args.smoke, profile=not args.smoke and not args.no_profile)
    results: list[Result] = []
    failed = 0
    started = time.perf_counter()
    try:
        await setup(ctx)
        for name in names:
            t = time.perf_counter()
            print(f"bench: {name} ...", flush=True)
            load_before = os.getloadavg()[0]
            try:
                res = await SCENARIOS[name](ctx)
            except Exception as exc:
                failed += 1
                traceback.print_exc()
                res = Result(name, f"{name} (FAILED)")
                res.lines.append(f"The scenario failed: `{type(exc).__name__}: {exc}`"[:2000])
                res.rows.append(
                    Row(name, "failed", "", *(float("nan"),) * 5, "-", False, "run failed")
                )
            load = os.getloadavg()[0]
            res.lines += [
                "",
                f"_Load average (1 min) before / after this scenario: {load_before:.2f} / "
                f"{load:.2f} on {os.cpu_count()} cores._",
            ]
            results.append(res)
            print(f"bench: {name} done in {time.perf_counter() - t:.1f} s", flush=True)
            for row in res.rows:
                verdict = "ok" if row.ok else ("-" if row.ok is None else "MISS")
                print(
                    f"  {row.scenario}: {row.metric}: gw {row.gw_median:.3g}/{row.gw_p99:.3g} "
                    f"base {row.base_median:.3g}/{row.base_p99:.3g} ratio {row.ratio:.3g} "
                    f"{verdict}",
                    flush=True,
                )
    finally:
        await emu.stop()
    mode = (
        "SMOKE run: a few seconds per scenario, figures not meaningful"
        if args.smoke
        else ("full run")
    )
    header = [
        "# commsgw benchmarks",
        "",
        f"Written by `python -m bench{' --smoke' if args.smoke else ''}"
        f"{' --only ' + ','.join(args.only) if args.only else ''}` on "
        f"{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} "
        f"({mode}, {time.perf_counter() - started:.0f} s).",
        "",
        *_machine(),
        "",
        "Latencies are medians and p99 over every request or event of a run; a ratio is "
        "gateway / baseline from this same run.",
        "",
        *TOPOLOGY,
    ]
    footer_path = HERE / "notes.md"
    footer = footer_path.read_text().splitlines() if footer_path.is_file() else []
    path = _report.write(results, out, header=header, profiles=ctx.profiles, footer=footer)
    print(f"bench: report written to {path}")
    if args.keep:
        print(f"bench: work directory (logs, raw results) kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
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
    args = p.parse_args()
    args.out = pathlib.Path(args.out).resolve()
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
