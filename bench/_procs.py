"""Processes of a run: gateways (`python -m commsgw serve`), the bare baseline server and the
load generators, each its own process so that the two cores are shared as in production."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys
from collections.abc import Mapping
from typing import Any

from bench._common import cpu_seconds, rss_bytes
from commsgw.testing import GatewayProcess

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Server(GatewayProcess):
    """A server process answering grpc.health.v1 (a gateway or the bare baseline), launched
    like the tests launch gateways, plus what the benchmark reads of it."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], workdir: pathlib.Path):
        super().__init__(
            {**env, "PYTHONPATH": str(ROOT)}, workdir / f"{name}.log", argv=argv, cwd=ROOT
        )
        self.name = name
        self.cold_start_s = 0.0

    def url(self, path: str = "/api/calls") -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    async def start(self, timeout: float = 60, *, poll_s: float = 0.005) -> float:
        """Start and wait until it answers SERVING; returns (and keeps) the seconds that took."""
        self.cold_start_s = await super().start(timeout, poll_s=poll_s)
        return self.cold_start_s

    async def streams(self) -> int:
        """Open WatchOperations streams, as the server counts them."""
        import httpx

        async with httpx.AsyncClient() as http:
            if self.name == "bare":
                return int((await http.get(self.url("/streams"))).text)
            text = (await http.get(self.url("/metrics"))).text
        for line in text.splitlines():
            if line.startswith("commsgw_subscribers "):
                return int(float(line.split()[1]))
        return 0

    def stop(self) -> None:
        self.kill()


def gateway(
    name: str, env: Mapping[str, str], workdir: pathlib.Path, *, loop: str = "uvloop"
) -> Server:
    """`python -m commsgw serve` on the given event loop (uvloop is the gateway's default)."""
    argv = [sys.executable, "-m", "commsgw", "serve"]
    return Server(name, argv, {**env, "COMMSGW_EVENT_LOOP": loop}, workdir)


def bare(workdir: pathlib.Path, *, loop: str = "uvloop", name: str = "bare") -> Server:
    """The same server stack doing no work, on the same event loop as the gateway."""
    s = Server(name, [], {}, workdir)
    s.argv = [sys.executable, "-m", "bench._bare", str(s.grpc_port), str(s.http_port), loop]
    return s


class Load:
    """One load generator process (`python -m bench._load MODE SPEC_FILE`)."""

    _n = 0

    def __init__(self, mode: str, spec: dict[str, Any], workdir: pathlib.Path) -> None:
        Load._n += 1
        self.mode = mode
        self.spec_path = workdir / f"load-{Load._n}-{mode}.json"
        self.out = workdir / f"load-{Load._n}-{mode}.out.json"
        self.log_path = workdir / f"load-{Load._n}-{mode}.log"
        self.spec_path.write_text(json.dumps({**spec, "out": str(self.out)}))
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, *, stdin: bool = False) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench._load",
            self.mode,
            str(self.spec_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=open(self.log_path, "wb"),  # noqa: SIM115
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            if line.strip() == b"READY":
                self.ready.set()

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


async def run_load(mode: str, spec: dict[str, Any], workdir: pathlib.Path) -> dict[str, Any]:
    load = Load(mode, spec, workdir)
    await load.start()
    return await load.result()


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
