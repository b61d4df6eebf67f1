"""A redis-server of a test's own."""

from __future__ import annotations

import pathlib
import subprocess

import redis.asyncio as aioredis

from commsgw.testing import free_port
from helpers.polling import eventually


class PrivateRedis:
    """A redis-server of the test's own, persisting to disk so that a restart keeps the log."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.port = free_port()
        self.dir = tmp / "redis"
        self.dir.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--dir", str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        r = aioredis.from_url(self.url)
        try:
            await eventually(
                r.ping,
                ignoring=(ConnectionError, aioredis.ConnectionError),
                what="redis-server answers PING",
            )
        finally:
            await r.aclose()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis flushes the append-only file and exits
            self.proc.wait(10)
