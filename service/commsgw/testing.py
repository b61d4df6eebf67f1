"""Run real gateway processes from tests and tools (multi-replica tests, the soak): start one on
free loopback ports, wait until it is SERVING, stop it gracefully or kill it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class GatewayProcess:
    """`python -m commsgw serve` (or another server answering grpc.health.v1, given as `argv`)
    with its own loopback ports; output goes to a log file."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: str | os.PathLike[str],
        *,
        argv: Sequence[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.argv = list(argv) if argv is not None else [sys.executable, "-m", "commsgw", "serve"]
        self.env = {
            **os.environ,
            **env,
            "COMMSGW_GRPC_ADDR": f"127.0.0.1:{self.grpc_port}",
            "COMMSGW_HTTP_ADDR": f"127.0.0.1:{self.http_port}",
        }
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api/calls"

    async def start(self, timeout: float = 30, *, poll_s: float = 0.1) -> float:
        """Start it and wait until health answers SERVING; returns the seconds that took.

        Each check uses a new channel, so that gRPC's reconnect backoff after the refused
        connections of a process still starting never delays seeing it serve."""
        # Popen and open return at once; the child keeps its own copy of the log file.
        log = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230
        started = time.perf_counter()
        self.proc = subprocess.Popen(  # noqa: ASYNC220
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd
        )
        log.close()
        async with asyncio.timeout(timeout):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.logs()}")
                try:
                    async with grpc.aio.insecure_channel(self.target) as ch:
                        resp = await health_pb2_grpc.HealthStub(ch).Check(
                            health_pb2.HealthCheckRequest(service=""), timeout=1
                        )
                    if resp.status == health_pb2.HealthCheckResponse.SERVING:
                        return time.perf_counter() - started
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(poll_s)

    def logs(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise
        return self.proc.returncode
