"""What every scenario shares: the rows of the targets table (per-run figures, medians, spreads
and ratios), the run context (emulator, tokens, topology, the A/B side) and the factories that
start processes on the right cores."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench._common import pct
from bench._pin import Topology, busy
from bench._procs import ROOT, Load, Server, imported_from, module_argv, pythonpath
from commsgw.emulator import Emulator

# --- figures ------------------------------------------------------------------------------------

# An A/B verdict needs at least this many paired rounds (all one way by chance: p = 2 / 2**n).
AB_MIN_ROUNDS = 5


def med(values: Sequence[float]) -> float:
    v = [x for x in values if math.isfinite(x)]
    return statistics.median(v) if v else math.nan


def fmt(v: float, digits: int = 2) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    if digits < 0:  # automatic: 3 significant figures, no exponent
        a = abs(v)
        digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    return f"{v:,.{digits}f}"


def spread(values: Sequence[float], digits: int = -1) -> str:
    """`median (min-max)` of per-run figures; just the figure for one run."""
    v = [x for x in values if math.isfinite(x)]
    if not v:
        return "-"
    if len(v) == 1:
        return fmt(v[0], digits)
    return f"{fmt(med(v), digits)} ({fmt(min(v), digits)}-{fmt(max(v), digits)})"


@dataclass
class Row:
    """One line of the targets table: a metric's per-run figures for the gateway (the working
    tree, in an A/B run) and for what it is compared with (a floor, a baseline, or REV's
    gateway), and the target.

    kind "ratio": ratio of the medians against `limit`; "max" / "min": the gateway's median
    against `limit` (the other side is shown for reference); "ab": no target, a verdict from
    the per-round ratios; "recorded": shown, no target."""

    scenario: str
    metric: str
    unit: str
    gw: list[float]
    base: list[float]
    target: str
    kind: str = "recorded"
    limit: float = math.nan
    higher_is_better: bool = False

    @property
    def gw_median(self) -> float:
        return med(self.gw)

    @property
    def base_median(self) -> float:
        return med(self.base)

    @property
    def ratio(self) -> float:
        b = self.base_median
        return self.gw_median / b if b and math.isfinite(b) else math.nan

    @property
    def round_ratios(self) -> list[float]:
        """gateway / other of each round (runs paired in order), when both sides have runs."""
        if len(self.gw) != len(self.base) or len(self.gw) < 2:
            return []
        return [g / b for g, b in zip(self.gw, self.base, strict=True) if b and math.isfinite(b)]

    @property
    def ok(self) -> bool | None:
        if self.kind == "ratio":
            r = self.ratio
            if not math.isfinite(r):
                return False
            return r >= self.limit if self.higher_is_better else r <= self.limit
        if self.kind in ("max", "min"):
            g = self.gw_median
            if not math.isfinite(g):
                return False
            return g < self.limit if self.kind == "max" else g >= self.limit
        return None

    @property
    def miss(self) -> str:
        if self.ok is not False:
            return ""
        if self.kind == "ratio" and math.isfinite(self.ratio):
            off = abs(self.ratio - self.limit) / self.limit * 100
            return f"{off:.0f}% {'short of' if self.higher_is_better else 'over'} {self.limit:g}x"
        if math.isfinite(self.gw_median):
            return f"{fmt(abs(self.gw_median - self.limit), -1)} {self.unit} over"
        return "no figure"

    @property
    def verdict(self) -> str:
        if self.kind == "ab":
            rr = self.round_ratios
            if len(rr) < AB_MIN_ROUNDS:
                return f"{len(rr) or 1} round(s): too few for a verdict (use --rounds 5 or more)"
            for side, lower in (("lower", True), ("higher", False)):
                if all((r < 1) if lower else (r > 1) for r in rr):
                    good = "better" if lower != self.higher_is_better else "worse"
                    # Sign test: identical sides give all rounds one way with p = 2 / 2**n.
                    p = 2 / 2 ** len(rr)
                    return f"**working tree {side} in all {len(rr)} rounds ({good}; p = {p:.2g})**"
            return "within noise (the rounds disagree)"
        ok = self.ok
        if ok is None:
            return "recorded"
        return "**pass**" if ok else f"**MISS** ({self.miss})"


def compare(
    scenario: str,
    metric: str,
    unit: str,
    runs: Sequence[dict[str, Any]],
    other: Sequence[dict[str, Any]],
    key: str,
    target: str = "recorded",
    **kw: Any,
) -> Row:
    """A row comparing the per-run figure `key` of two paths' runs."""
    return Row(
        scenario, metric, unit, col(runs, key), col(other, key) if other else [], target, **kw
    )


def batched_cpu_rows(
    scenario: str,
    batched: tuple[str, Sequence[dict[str, Any]]],
    single: Sequence[dict[str, Any]],
    bare: Sequence[dict[str, Any]],
    *,
    per_post: bool = False,
) -> list[Row]:
    """The fan-out CPU rows: the gateway in batches against the bare one-message-per-event
    cost, and the gateway one message per event beside it.

    With `per_post` (4a, 4b: live fan-out, where each POST's ingest is in the same CPU
    reading and nothing is queued to batch) the rows are the CPU per POST, ingest plus
    delivery, recorded without a target; otherwise (4c: a backlog delivered from the log,
    where batching applies) per delivered event, the batched one at most half the bare one."""
    if per_post:
        metric, key = "server CPU per POST, ingest plus delivery (µs)", "cpu_us_per_post"
        return [
            compare(scenario, f"{metric}: {name} vs bare", "µs", runs, bare, key)
            for name, runs in (batched, ("gateway (one message per event)", single))
        ]
    metric, key = "server CPU per delivered event (µs)", "cpu_us_per_delivered"
    name, runs = batched
    return [
        compare(
            scenario,
            f"{metric}: {name} vs bare (one message per event)",
            "µs",
            runs,
            bare,
            key,
            "<= 0.5x bare",
            kind="ratio",
            limit=0.5,
        ),
        compare(
            scenario, f"{metric}: gateway (one message per event) vs bare", "µs", single, bare, key
        ),
    ]


def delivery_cells(runs: Sequence[dict[str, Any]]) -> tuple[str, str, dict[str, int], list[float]]:
    """Over one path's fan-out runs: "delivered / expected", events per message, the POST
    statuses summed, and the busy share of the server's core that was not the server's."""
    got = sum(r["received"] for r in runs)
    exp = sum(r["expected"] for r in runs)
    per_msg = got / max(1, sum(r["messages"] for r in runs))
    statuses: dict[str, int] = {}
    for r in runs:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    others = [max(0.0, r["server_core"] - r["server_share"]) for r in runs]
    return f"{got:,} / {exp:,}", f"{per_msg:.1f}", statuses, others


def ratio_cell(row: Row) -> str:
    r = row.ratio
    if not math.isfinite(r):
        return "-"
    rr = row.round_ratios
    if rr:
        return f"{r:.2f} ({min(rr):.2f}-{max(rr):.2f})"
    return f"{r:.2f}"


@dataclass
class Result:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # Markdown for the scenario's section
    plots: list[dict[str, Any]] = field(default_factory=list)


def derive(run: dict[str, Any], topo: Topology) -> dict[str, Any]:
    """Per-run figures of a `cancel_runs` / `ingest_runs` run record."""
    lat = run["latencies"]
    ok = max(1, run["ok"])
    cpu = run["cpu"]
    cores = {int(k): v for k, v in run["cores"].items()}
    c0 = {k: tuple(v[0]) for k, v in cores.items()}
    c1 = {k: tuple(v[1]) for k, v in cores.items()}
    return {
        "rate": run["ok"] / run["elapsed"] if run["elapsed"] else math.nan,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "server_us": cpu["server"] / ok * 1e6 if cpu.get("server") else math.nan,
        "emulator_us": cpu["emulator"] / ok * 1e6,
        "load_us": cpu["load"] / ok * 1e6,
        "server_core": busy(c0, c1, topo.server) * 100,  # type: ignore[arg-type]
        # The server's own share of its core(s): the rest of the busy time is someone else's.
        "server_share": cpu.get("server", 0.0) / run["elapsed"] / len(topo.server) * 100
        if run["elapsed"]
        else math.nan,
        "rest_core": busy(c0, c1, topo.rest) * 100,  # type: ignore[arg-type]
        "errors": sum(run["errors"].values()),
        "statuses": run["statuses"],
        "n": run["ok"],
    }


def by_path(data: dict[str, Any], topo: Topology) -> dict[str, list[dict[str, Any]]]:
    """Each path's per-run figures, in round order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run in data["runs"]:
        out.setdefault(run["path"], []).append(derive(run, topo))
    return out


def latencies(data: dict[str, Any], path: str) -> list[float]:
    return [x for run in data["runs"] if run["path"] == path for x in run["latencies"]]


def col(runs: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in runs]


def runs_table(
    paths: dict[str, list[dict[str, Any]]],
    *,
    op: str,
    topo: Topology,
    emulator: bool = True,
) -> list[str]:
    """The per-path table of a scenario: medians over its runs, (min-max) beside them."""
    sc, rc = ",".join(map(str, topo.server)), ",".join(map(str, topo.rest))
    emu_head = f" emulator CPU µs/{op} |" if emulator else ""
    out = [
        f"| path | runs | {op}s/s | latency p50 ms | p99 ms | server CPU µs/{op} |{emu_head} "
        f"core {sc} busy %: the server / anything else | core {rc} busy % | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |"
        + (" ---: |" if emulator else "")
        + " ---: | ---: | ---: |",
    ]
    for name, runs in paths.items():
        others = [max(0.0, r["server_core"] - r["server_share"]) for r in runs]
        emu = f" {spread(col(runs, 'emulator_us'))} |" if emulator else ""
        out.append(
            f"| {name} | {len(runs)} | {spread(col(runs, 'rate'))} | "
            f"{spread(col(runs, 'p50'))} | {spread(col(runs, 'p99'))} | "
            f"{spread(col(runs, 'server_us'))} |{emu} "
            f"{spread(col(runs, 'server_share'), 0)} / {spread(others, 0)} | "
            f"{spread(col(runs, 'rest_core'), 0)} | {int(sum(col(runs, 'errors')))} |"
        )
    if not topo.pinned:
        out.append("")
        out.append("(Unpinned: both busy columns are of all cores.)")
    saturated = [name for name, runs in paths.items() if med(col(runs, "rest_core")) >= 95]
    if topo.pinned and saturated:
        out += [
            "",
            f"Core {rc} (the emulator, the load generator) was 95% busy or more in the runs of "
            f"{', '.join(saturated)}: there the rate is the load side's limit, not the server's; "
            "the CPU per operation still compares the servers.",
        ]
    return out


# --- the run's context -----------------------------------------------------------------------


@dataclass
class Ab:
    """The other side of an A/B run: the gateway from git revision `rev`, checked out in
    `root` (a temporary worktree)."""

    rev: str
    sha: str
    root: pathlib.Path

    @property
    def label(self) -> str:
        return f"gateway@{self.rev}"


# How often a gateway's loop-lag probe fires under --loop-lag (seconds).
LOOP_LAG_PROBE_S = 0.01


@dataclass
class Ctx:
    """What every scenario gets: the emulator, tokens, durations, the topology, the A/B side
    and a work directory."""

    emulator: Emulator
    workdir: pathlib.Path
    smoke: bool
    topo: Topology
    rounds: int
    ab: Ab | None = None
    # --loop-lag: the gateways measure their event loop's lag and GC pauses (opt-in, since the
    # probe is work of its own), and the fan-out runs report what they saw.
    loop_lag: bool = False
    notif_token: str = ""
    access_token: str = ""
    cancel_calls: list[str] = field(default_factory=list)
    profile: bool = False
    profiles: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)  # side -> where it imports commsgw from
    _n: int = 0

    def secs(self, full: float, smoke: float) -> float:
        return smoke if self.smoke else full

    def count(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full

    def env(self, **extra: str) -> dict[str, str]:
        emu = self.emulator
        env = {
            "COMMSGW_EMULATOR_URL": emu.base_url,
            "COMMSGW_CA_FILE": str(emu.ca_path),
            # One load generator is one source address: lift the per-source rate limit.
            "COMMSGW_WEBHOOK_RATE": "1000000",
            "COMMSGW_MAX_STREAMS": "20000",
            "COMMSGW_MAX_STREAMS_PER_CALLER": "20000",
            "COMMSGW_GRAPH_TIMEOUT_S": "10",
        }
        if self.loop_lag:
            env["COMMSGW_LOOP_LAG_PROBE_S"] = str(LOOP_LAG_PROBE_S)
        env.update(extra)
        return env

    def _cores(self, role: str, unpinned: bool) -> tuple[int, ...] | None:
        return self.topo.cores(role, unpinned=unpinned)

    def gateway(
        self,
        name: str,
        env: dict[str, str],
        *,
        loop: str = "uvloop",
        unpinned: bool = False,
        ab: bool = False,
    ) -> Server:
        """`python -m commsgw serve` (the working tree's, or with `ab` REV's), on uvloop (the
        gateway's default) unless told, on the server's core unless `unpinned`."""
        root = self.ab.root if ab and self.ab is not None else ROOT
        path = pythonpath(root)
        side = self.ab.label if ab and self.ab is not None else "gateway"
        if side not in self.code:
            self.code[side] = imported_from(path)
        return Server(
            name,
            [sys.executable, "-m", "commsgw", "serve"],
            {**env, "COMMSGW_EVENT_LOOP": loop},
            self.workdir,
            topo=self.topo,
            cores=self._cores("server", unpinned),
            path=path,
        )

    def sides(self, name: str, env: dict[str, str], **kw: Any) -> list[tuple[str, Server]]:
        """The gateway, and in an A/B run REV's gateway beside it."""
        out = [("gateway", self.gateway(name, env, **kw))]
        if self.ab is not None:
            out.append((self.ab.label, self.gateway(f"{name}-ab", env, ab=True, **kw)))
        return out

    def bare(
        self,
        name: str = "bare",
        *,
        loop: str = "uvloop",
        unpinned: bool = False,
        imports: Sequence[str] = (),
    ) -> Server:
        """The bare server (`bench._bare`) on the same event loop as the gateway, having
        imported `imports` first."""
        s = Server(
            name, [], {}, self.workdir, topo=self.topo, cores=self._cores("server", unpinned)
        )
        s.argv = module_argv("bench._bare", s.grpc_port, s.http_port, loop, ",".join(imports))
        return s

    def floor(self, kind: str) -> Server:
        """A floor server of `bench._floors`, on the server's core."""
        emu = self.emulator
        s = Server(
            f"floor-{kind}",
            [],
            {},
            self.workdir,
            topo=self.topo,
            cores=self._cores("server", False),
        )
        spec = {
            "kind": kind,
            "grpc_port": s.grpc_port,
            "http_port": s.http_port,
            "graph_url": emu.base_url,
            "ca": str(emu.ca_path),
            "token": self.access_token,
            "jwks_url": emu.notification_jwks_url,
            "audience": emu.config.client_id,
            "issuer": emu.notification_issuer,
        }
        path = self.workdir / f"floor-{kind}.json"
        path.write_text(json.dumps(spec))
        s.argv = module_argv("bench._floors", path)
        return s

    def receiver(self) -> Server:
        """The OTLP receiver (`bench._otlp`), with the load."""
        s = Server(
            "otlp-receiver",
            [],
            {},
            self.workdir,
            topo=self.topo,
            cores=self._cores("load", False),
            role="otlp receiver",
        )
        s.argv = module_argv("bench._otlp", s.grpc_port, s.http_port)
        return s

    def load(self, mode: str, spec: dict[str, Any], *, unpinned: bool = False) -> Load:
        return Load(mode, spec, self.workdir, topo=self.topo, cores=self._cores("load", unpinned))

    async def run_load(
        self, mode: str, spec: dict[str, Any], *, unpinned: bool = False, timeout: float = 600
    ) -> dict[str, Any]:
        load = self.load(mode, spec, unpinned=unpinned)
        await load.start()
        return await load.result(timeout)

    def cancel_spec(self, **extra: Any) -> dict[str, Any]:
        return {
            "graph_url": self.emulator.base_url,
            "token": self.access_token,
            "ca": str(self.emulator.ca_path),
            "call_ids": self.cancel_calls,
            "emulator_pid": os.getpid(),
            **extra,
        }


@contextlib.asynccontextmanager
async def running(*servers: Server) -> AsyncIterator[None]:
    try:
        for s in servers:
            await s.start()
        yield
    finally:
        for s in servers:
            s.stop()


async def profiled(
    ctx: Ctx, name: str, server: Server, seconds: float, *, delay: float = 0.0
) -> asyncio.Task[None] | None:
    """With --profile, sample the server with py-spy for `seconds` after `delay` (the load's
    start and warm-up left out; top functions kept). Only ever during an extra run whose
    figures are not reported: py-spy takes CPU too."""
    if not ctx.profile:
        return None
    out = ctx.workdir / f"profile-{len(ctx.profiles)}-{server.name}.txt"

    async def run() -> None:
        await asyncio.sleep(delay)
        argv = ctx.topo.wrap(
            module_argv("bench._profile", server.pid, seconds, out), ctx.topo.cores("load")
        )
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await proc.wait()
        from bench._profile import top_functions

        with contextlib.suppress(OSError):
            ctx.profiles[name] = top_functions(out)

    return asyncio.create_task(run())
