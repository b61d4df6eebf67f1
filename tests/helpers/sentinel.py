"""A replicated Redis of a test's own on loopback: a primary, a replica behind a link with
latency (asynchronous replication that lags, as across zones), and three Sentinels."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import subprocess
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from commsgw.testing import free_port
from helpers.polling import eventually

SERVICE = "commsgw-test"


class SlowLink:
    """A TCP proxy that delivers every byte `delay` seconds after it arrived, in order; when
    one side goes away, what was still on the way to the other is dropped (a link to a host
    that died: the replication stream in flight never arrives)."""

    def __init__(self, upstream: int, delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        loop = asyncio.get_running_loop()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

            async def deliver() -> None:
                while True:
                    due, data = await queue.get()
                    if not data:
                        break
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    dst.write(data)
                    await dst.drain()

            sender = asyncio.create_task(deliver())
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    queue.put_nowait((loop.time() + self.delay, data))
            # The sending side is gone (its host died): what was still on the link is lost.
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            with contextlib.suppress(Exception):
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


class SentinelGroup:
    """redis-server primary and replica (no persistence: a restarted server is empty) and
    three Sentinels (redis-server --sentinel) monitoring them as `SERVICE`, in `tmp`."""

    def __init__(self, tmp: pathlib.Path, *, link_delay: float) -> None:
        self.tmp = tmp
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.link = SlowLink(self.primary_port, link_delay)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def _server(self, name: str, port: int, *extra: str) -> None:
        d = self.tmp / name
        d.mkdir(exist_ok=True)
        self._spawn(
            name,
            [
                "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(d), *extra,
            ],
        )  # fmt: skip

    async def start(self) -> None:
        await self.link.start()
        self._server("primary", self.primary_port)
        await _answers(self.primary_port)
        # The replica reaches the primary through the slow link, and announces its own port.
        self._server("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.link.port))
        await _answers(self.replica_port)
        await eventually(
            lambda: _replicas_online(self.primary_port), timeout=20, what="the replica in sync"
        )
        for i, port in enumerate(self.sentinel_ports):
            conf = self.tmp / f"sentinel-{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.tmp}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 60000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            # redis-sentinel is redis-server in Sentinel mode (Debian's redis-sentinel package
            # only adds the link and a service), so this needs only redis-server.
            self._spawn(f"sentinel-{i}", ["redis-server", str(conf), "--sentinel"])
        for port in self.sentinel_ports:
            await eventually(
                lambda port=port: self._sentinel_sees_replica(port),  # type: ignore[misc]
                timeout=20,
                ignoring=(RedisError, OSError),
                what="each Sentinel knows the primary and its replica",
            )

    async def _sentinel_sees_replica(self, port: int) -> bool:
        async with aioredis.Redis(port=port) as s:
            replicas = await s.execute_command("SENTINEL", "REPLICAS", SERVICE)
            sentinels = await s.execute_command("SENTINEL", "SENTINELS", SERVICE)
        return len(replicas) == 1 and len(sentinels) == 2

    async def primary(self) -> int:
        """The port the Sentinels name as the primary."""
        async with aioredis.Redis(port=self.sentinel_ports[0]) as s:
            _host, port = await s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def kill_primary(self) -> float:
        """kill -9 of the primary; returns the time it died (time.monotonic)."""
        proc = self.procs["primary"]
        proc.kill()
        proc.wait(10)
        return time.monotonic()

    async def restart_old_primary(self, *, replica_of: int) -> None:
        """The killed server comes back empty, as a replica of the new primary (as a node
        that asks the Sentinels for the primary before it starts)."""
        self._server("primary", self.primary_port, "--replicaof", "127.0.0.1", str(replica_of))
        await _answers(self.primary_port)

    async def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        await self.link.close()


async def _answers(port: int) -> None:
    r = aioredis.Redis(port=port)
    try:
        await eventually(r.ping, ignoring=(RedisError, OSError), what=f"redis on {port}")
    finally:
        await r.aclose()


async def _replicas_online(port: int) -> bool:
    async with aioredis.Redis(port=port) as r:
        info = await r.info("replication")
    return int(info.get("connected_slaves", 0)) >= 1 and "online" in str(info.get("slave0", ""))
