"""`python -m bench._instr WORKLOAD [--n N] [--rev-root DIR]`: the gateway's instructions per
operation, counted by valgrind's callgrind, for A/B of a change on a busy machine.

Wall-clock and CPU time move with whatever else runs on the machine; an instruction count of a
fixed workload does not (it moves by a few tenths of a percent between runs). The gateway runs
under `valgrind --tool=callgrind --instr-atstart=no` (uninstrumented while it starts and while
the workload is warmed up), the driver (this process: the emulator, the load, the
subscribers) turns instrumentation on with `callgrind_control -i on`, sends N operations one
at a time (so that no batching or timing changes the work), turns it off, and reads the
instructions the gateway executed in between from callgrind's dump. Only the gateway process is
counted, with every thread it runs (gRPC core's, the log writer's).

Workloads:
  ingest-cached  webhook POSTs of one notification, one token (served from the verified cache)
  ingest-fresh   the same, each POST with a token the gateway has not seen (an RS256 verify)
  cancel         CancelMediaProcessing RPCs (one Graph request each)
  fanout         POSTs each delivered to the one WatchOperations stream watching its call,
                 `--streams` streams open (4a's shape)
  fanout-all     POSTs each delivered to every one of `--streams` streams watching everything
                 (4b's shape)

`--rev-root DIR` runs DIR's `service/` and `clients/python/` (a `git worktree` of the other
revision) instead of this tree's. Prints one JSON line: instructions per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
from typing import Any

import aiohttp
import grpc
import httpx

from bench._common import TENANT, BodyTemplate
from bench._procs import ROOT, pythonpath
from commsgw.emulator import Emulator, EmulatorConfig
from commsgw.testing import GatewayProcess
from graphcomms.v1 import calls_pb2, calls_pb2_grpc


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _total(path: pathlib.Path) -> int:
    """Instructions (Ir) of every dump callgrind wrote for the gateway (one per thread)."""
    total = 0
    for f in path.parent.glob(path.name + "*"):
        found = re.findall(r"^totals: (\d+)", f.read_text(errors="replace"), re.M)
        total += sum(int(x) for x in found)
    return total


async def _calls(emu: Emulator, token: str, n: int) -> list[str]:
    out = []
    async with httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=str(emu.ca_path)), base_url=emu.graph_url
    ) as http:
        for _ in range(n):
            r = await http.post(
                "/communications/calls",
                json={
                    "@odata.type": "#microsoft.graph.call",
                    "callbackUri": "http://127.0.0.1:9/x",
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            r.raise_for_status()
            out.append(str(r.json()["id"]))
    return out


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "workload", choices=["ingest-cached", "ingest-fresh", "cancel", "fanout", "fanout-all"]
    )
    p.add_argument("--n", type=int, default=300, help="operations counted")
    p.add_argument("--streams", type=int, default=200, help="fan-out: streams open")
    p.add_argument("--rev-root", type=pathlib.Path, default=ROOT)
    p.add_argument(
        "--cprofile",
        type=pathlib.Path,
        metavar="OUT",
        help="run the gateway under cProfile instead of callgrind and write its stats to OUT "
        "(start-up and warm-up included: read the per-call figures of the hot path)",
    )
    args = p.parse_args()
    if args.cprofile is None and shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    work = pathlib.Path(tempfile.mkdtemp(prefix="commsgw-instr-"))
    emu = Emulator(EmulatorConfig(port=0, state_dir=work / "emulator"))
    await emu.start()
    out = work / "callgrind.out"
    gw = GatewayProcess(
        {
            "PYTHONPATH": pythonpath(args.rev_root),
            "PYTHONHASHSEED": "0",
            "COMMSGW_EMULATOR_URL": emu.base_url,
            "COMMSGW_CA_FILE": str(emu.ca_path),
            "COMMSGW_WEBHOOK_RATE": "1000000",
            "COMMSGW_MAX_STREAMS": "20000",
            "COMMSGW_MAX_STREAMS_PER_CALLER": "20000",
            "COMMSGW_GRAPH_TIMEOUT_S": "60",
            # No timer-driven bookmarks while counting: the count is the workload's alone.
            "COMMSGW_BOOKMARK_INTERVAL_S": "3600",
        },
        work / "gateway.log",
        argv=(
            [
                *(sys.executable, "-m", "cProfile", "-o", str(args.cprofile.resolve())),
                *("-m", "commsgw", "serve"),
            ]
            if args.cprofile
            else [
                *("valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=no"),
                *(f"--callgrind-out-file={out}", sys.executable, "-m", "commsgw", "serve"),
            ]
        ),
        cwd=ROOT,
    )
    n = args.n
    try:
        await gw.start(timeout=600, poll_s=1.0)
        access = emu.issue_access_token()
        # No callbacks from the emulator (the calls' callback URL goes nowhere; signing and
        # sending them would only slow the driver), as in the bench's setup.
        dispatcher, emu._dispatcher = emu._dispatcher, None
        if dispatcher is not None:
            await dispatcher.aclose()
        calls = await _calls(emu, access, max(n, args.streams) if args.workload != "cancel" else 20)
        if args.workload == "cancel":
            await _cancel(gw, calls, n)
        elif args.workload.startswith("ingest"):
            await _ingest(emu, gw, calls, n, fresh=args.workload == "ingest-fresh")
        else:
            await _fanout(emu, gw, calls, n, args.streams, every=args.workload == "fanout-all")
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            gw.terminate(timeout=300)
        await emu.stop()
    if args.cprofile:
        print(json.dumps({"workload": args.workload, "n": n, "cprofile": str(args.cprofile)}))
        return
    total = _total(out)
    print(
        json.dumps(
            {
                "workload": args.workload,
                "n": n,
                "code": str(args.rev_root),
                "instructions": total,
                "per_op": round(total / n),
            }
        )
    )
    if total:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"no instructions counted: see {work}", file=sys.stderr)


async def _measured(gw: GatewayProcess, run: Any) -> None:
    """Instrumentation on around `run()` only; the gateway's counters are read at its exit.
    (Under cProfile there is nothing to switch: the whole process is profiled.)"""
    counting = "valgrind" in gw.argv
    if counting:
        _control(gw.pid, "-i", "on")
    await run()
    if counting:
        _control(gw.pid, "-i", "off")


async def _cancel(gw: GatewayProcess, calls: list[str], n: int) -> None:
    async with grpc.aio.insecure_channel(gw.target) as ch:
        stub = calls_pb2_grpc.CallsServiceStub(ch)

        async def some(k: int) -> None:
            for i in range(k):
                req = calls_pb2.CancelMediaProcessingRequest(call_id=calls[i % len(calls)])
                await stub.CancelMediaProcessing(req, timeout=120)

        await some(20)  # warm: connections, token, code paths

        async def run() -> None:
            await some(n)

        await _measured(gw, run)


async def _ingest(
    emu: Emulator, gw: GatewayProcess, calls: list[str], n: int, *, fresh: bool
) -> None:
    token = emu.mint_notification_token(tenant_id=TENANT, expires_in=3600)
    fresh_tokens = [
        emu.mint_notification_token(tenant_id=TENANT, expires_in=3600, jti=f"instr-{i}")
        for i in range(n if fresh else 0)
    ]
    tmpl = BodyTemplate()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def post(i: int, tok: str | None) -> None:
            hdrs = {"Authorization": f"Bearer {tok}"} if tok else None
            async with session.post(
                gw.webhook, data=tmpl.body(calls[i % len(calls)])[0], headers=hdrs
            ) as r:
                await r.read()
                if r.status != 202:
                    raise SystemExit(f"POST answered {r.status}: {await r.text()}")

        for i in range(20):
            await post(i, None)

        async def run() -> None:
            for i in range(n):
                await post(i, fresh_tokens[i] if fresh else None)

        await _measured(gw, run)


async def _fanout(
    emu: Emulator, gw: GatewayProcess, calls: list[str], n: int, streams: int, *, every: bool
) -> None:
    token = emu.mint_notification_token(tenant_id=TENANT, expires_in=3600)
    tmpl = BodyTemplate()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    received = 0
    want = 0
    changed = asyncio.Event()
    async with (
        grpc.aio.insecure_channel(gw.target) as ch,
        aiohttp.ClientSession(headers=headers) as session,
    ):
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        opened: list[Any] = []
        ready = 0

        async def watch(i: int) -> None:
            nonlocal received, ready
            req = calls_pb2.WatchOperationsRequest(call_ids=[] if every else [calls[i]])
            call = stub.WatchOperations(req)
            opened.append(call)
            async for r in call:
                if r.HasField("bookmark"):
                    if r.bookmark.kind == calls_pb2.BOOKMARK_KIND_START:
                        ready += 1
                        changed.set()
                    continue
                received += len(r.batch) or 1
                changed.set()

        tasks = [asyncio.create_task(watch(i)) for i in range(streams)]

        async def until(cond: Any) -> None:
            while not cond():
                changed.clear()
                await asyncio.wait_for(changed.wait(), 600)

        async def post(i: int) -> None:
            nonlocal want
            want += streams if every else 1
            async with session.post(gw.webhook, data=tmpl.body(calls[i % streams])[0]) as r:
                await r.read()
                if r.status != 202:
                    raise SystemExit(f"POST answered {r.status}")
            await until(lambda: received >= want)

        await until(lambda: ready >= streams)
        for i in range(20):
            await post(i)

        async def run() -> None:
            for i in range(n):
                await post(i)

        try:
            await _measured(gw, run)
        finally:
            for c in opened:
                c.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
