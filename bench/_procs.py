"""Processes of a run: gateways (`python -m commsgw serve`), the floor and bare servers, the
OTLP receiver and the load generators, each its own process, each started on the cores the
topology gives its role (`bench._pin`)."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from bench._common import cpu_seconds, rss_bytes
from bench._pin import Cores, Topology
from commsgw.testing import GatewayProcess

ROOT = pathlib.Path(__file__).resolve().parent.parent


def pythonpath(*roots: pathlib.Path) -> str:
    """PYTHONPATH putting the gateway's code (service/) and the generated client code
    (clients/python/) of each tree in `roots` first, then this tree (the bench package), then
    whatever the driver was given."""
    parts = [str(p) for r in roots for p in (r / "service", r / "clients" / "python")]
    parts.append(str(ROOT))
    inherited = os.environ.get("PYTHONPATH")
    if inherited:
        parts += [p for p in inherited.split(os.pathsep) if p and p not in parts]
    return os.pathsep.join(parts)


def imported_from(env_pythonpath: str) -> str:
    """Where a child with this PYTHONPATH imports commsgw and graphcomms from (checked, so the
    report says which code was measured)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import commsgw, graphcomms; print(commsgw.__path__[0]); print(graphcomms.__path__[0])",
        ],
        env={**os.environ, "PYTHONPATH": env_pythonpath},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return ", ".join(_shown(path) for path in out.stdout.split()) or (
        f"(failed: {out.stderr.strip()[-200:]})"
    )


def _shown(path: str) -> str:
    """A path as the report shows it: relative to this checkout when inside it (this tree's
    code), else only its last three parts (an A/B worktree's): never a machine's folders."""
    p = pathlib.Path(path).resolve()
    if p.is_relative_to(ROOT.resolve()):
        return f"./{p.relative_to(ROOT.resolve())}"
    return f".../{'/'.join(p.parts[-3:])}"


class Server(GatewayProcess):
    """A server process answering grpc.health.v1 (a gateway, a floor, the bare server or the
    OTLP receiver), launched like the tests launch gateways, on the cores of its role, plus
    what the benchmark reads of it."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        workdir: pathlib.Path,
        *,
        topo: Topology,
        cores: Cores | None,
        role: str = "server",
        path: str | None = None,
    ):
        super().__init__(
            {**env, "PYTHONPATH": path or pythonpath(ROOT)},
            workdir / f"{name}.log",
            argv=argv,
            cwd=ROOT,
        )
        self.name = name
        self.role = role
        self.topo = topo
        self.cores = cores
        self.cold_start_s = 0.0

    def url(self, path: str = "/api/calls") -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    async def start(self, timeout: float = 60, *, poll_s: float = 0.005) -> float:
        """Start on its cores and wait until it answers SERVING; returns (and keeps) the seconds
        that took."""
        bare_argv = self.argv
        self.argv = self.topo.wrap(bare_argv, self.cores)
        try:
            self.cold_start_s = await super().start(timeout, poll_s=poll_s)
        finally:
            self.argv = bare_argv
        self.topo.record(self.name, self.role, self.pid)
        return self.cold_start_s

    async def streams(self) -> int:
        """Open WatchOperations streams, as the server counts them."""
        import httpx

        async with httpx.AsyncClient() as http:
            if self.name.startswith("bare"):
                return int((await http.get(self.url("/streams"))).text)
            text = (await http.get(self.url("/metrics"))).text
        for line in text.splitlines():
            if line.startswith("commsgw_subscribers "):
                return int(float(line.split()[1]))
        return 0

    async def histograms(self, *names: str) -> dict[str, dict[str, float]]:
        """The bucket counts (cumulative, by `le`) of each histogram `names` in the gateway's
        /metrics, one entry per label set (`name{labels}`, `le` left out), `_sum` as "sum"."""
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        async with httpx.AsyncClient() as http:
            text = (await http.get(self.url("/metrics"))).text
        out: dict[str, dict[str, float]] = {}
        for family in text_string_to_metric_families(text):
            if family.name not in names:
                continue
            for smp in family.samples:
                labels = {k: v for k, v in smp.labels.items() if k != "le"}
                key = family.name + "".join(f"{{{k}={v}}}" for k, v in sorted(labels.items()))
                if smp.name.endswith("_bucket"):
                    out.setdefault(key, {})[smp.labels["le"]] = smp.value
                elif smp.name.endswith("_sum"):
                    out.setdefault(key, {})["sum"] = smp.value
        return out

    def stop(self) -> None:
        self.kill()


def module_argv(module: str, *args: object) -> list[str]:
    return [sys.executable, "-m", module, *(str(a) for a in args)]


class Load:
    """One load generator process (`python -m bench._load MODE SPEC_FILE`)."""

    _n = 0

    def __init__(
        self,
        mode: str,
        spec: dict[str, Any],
        workdir: pathlib.Path,
        *,
        topo: Topology,
        cores: Cores | None,
    ) -> None:
        Load._n += 1
        self.mode = mode
        self.topo = topo
        self.cores = cores
        self.spec_path = workdir / f"load-{Load._n}-{mode}.json"
        self.out = workdir / f"load-{Load._n}-{mode}.out.json"
        self.log_path = workdir / f"load-{Load._n}-{mode}.log"
        self.spec_path.write_text(json.dumps({**spec, "out": str(self.out)}))
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        # Marker lines the process printed (READY, and for the fan-out FIRST and DONE).
        self._lines: dict[str, asyncio.Event] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, *, stdin: bool = False) -> None:
        argv: Sequence[str] = self.topo.wrap(
            module_argv("bench._load", self.mode, self.spec_path), self.cores
        )
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=open(self.log_path, "wb"),  # noqa: SIM115
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": pythonpath(ROOT)},
        )
        self.topo.record(self.mode, "load", self.proc.pid)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            mark = line.strip().decode(errors="replace")
            self._line(mark).set()
            if mark == "READY":
                self.ready.set()

    def _line(self, mark: str) -> asyncio.Event:
        return self._lines.setdefault(mark, asyncio.Event())

    async def wait_line(self, mark: str, timeout: float, *, required: bool = True) -> bool:
        """Wait until the process prints the line `mark`: True when it did; False (or, when
        `required`, RuntimeError) when it exited or `timeout` passed first."""
        assert self.proc is not None
        seen = self._line(mark)
        waiter = asyncio.ensure_future(seen.wait())
        exited = asyncio.ensure_future(self.proc.wait())
        await asyncio.wait({waiter, exited}, timeout=timeout, return_when="FIRST_COMPLETED")
        waiter.cancel()
        exited.cancel()
        if not seen.is_set() and required:
            raise RuntimeError(f"{self.mode} load never printed {mark}: {self.stderr()}")
        return seen.is_set()

    async def wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        waiter = asyncio.create_task(self.ready.wait())
        exited = asyncio.create_task(self.proc.wait())
        await asyncio.wait({waiter, exited}, timeout=timeout, return_when="FIRST_COMPLETED")
        waiter.cancel()
        exited.cancel()
        if not self.ready.is_set():
            raise RuntimeError(f"{self.mode} load not ready: {self.stderr()}")

    def close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()

    async def result(self, timeout: float = 300) -> dict[str, Any]:
        assert self.proc is not None
        try:
            async with asyncio.timeout(timeout):
                rc = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise RuntimeError(f"{self.mode} load timed out: {self.stderr()}") from None
        if self._reader is not None:
            await self._reader
        if rc != 0:
            raise RuntimeError(f"{self.mode} load failed ({rc}): {self.stderr()}")
        data: dict[str, Any] = json.loads(self.out.read_text())
        return data

    def stderr(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


async def wait_streams(servers: list[Server], n: int, timeout: float = 180) -> None:
    """Wait until the servers count `n` open streams together (then a moment more, for the
    last ones to be registered with the fan-out)."""
    async with asyncio.timeout(timeout):
        while True:
            counts = [await s.streams() for s in servers]
            if sum(counts) >= n:
                break
            await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)
