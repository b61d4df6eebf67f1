"""The gateway assembles and tears down safely: a start that fails at any step closes what the
steps before it opened (no asyncio task, no socket, no HTTP client session is left) and raises
its own error; a stop whose one cleanup fails still runs every other one.

Failures are real where they can be (a port taken, Redis not there, a CA file or a certificate
that does not load) and planted at every step of `Gateway.STEPS` otherwise (before the step
runs, and after it opened its part)."""

from __future__ import annotations

import asyncio
import gc
import os
import pathlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import pytest

from commsgw._errors import ConfigError, EventLogUnavailable
from commsgw.emulator import Emulator
from commsgw.server import Gateway
from commsgw.server import _gateway as gateway_module
from commsgw.testing import free_port
from helpers.gateway import gateway_settings
from helpers.polling import eventually

pytestmark = pytest.mark.e2e  # gateways against the emulator, in this process


def _socket_inodes() -> set[int]:
    """The inodes of every socket this process has open."""
    out: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listdir's own fd)
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def _listening(inodes: set[int]) -> set[int]:
    """The TCP ports that these sockets listen on."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] == "0A" and int(cols[9]) in inodes:  # 0A: LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def _open_sessions() -> Iterator[object]:
    for obj in gc.get_objects():
        if isinstance(obj, aiohttp.ClientSession):
            if not obj.closed:
                yield obj
        elif isinstance(obj, httpx.AsyncClient) and not obj.is_closed:
            yield obj


@dataclass
class Baseline:
    """What the process had open before the gateway: anything more afterwards is a leak."""

    tasks: set[asyncio.Task[Any]] = field(default_factory=lambda: set(asyncio.all_tasks()))
    sockets: set[int] = field(default_factory=_socket_inodes)
    sessions: set[int] = field(default_factory=lambda: {id(s) for s in _open_sessions()})

    def leaks(self) -> list[str]:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() - self.tasks if t is not me and not t.done()]
        sockets = _socket_inodes() - self.sockets
        sessions = [s for s in _open_sessions() if id(s) not in self.sessions]
        return (
            [f"task {t.get_coro()!r}" for t in tasks]
            + [f"listening on port {p}" for p in sorted(_listening(sockets))]
            + [f"{len(sockets)} socket(s) open"] * bool(sockets)
            + [f"open session {s!r}" for s in sessions]
        )

    async def assert_nothing_left(self) -> None:
        # Closing is asynchronous at the far end too (the emulator sees the connection go):
        # wait for the condition rather than a guessed time.
        try:
            await eventually(lambda: not self.leaks(), timeout=10, what="nothing left open")
        except AssertionError:
            leaks = self.leaks()
            assert not leaks, "left open:\n" + "\n".join(leaks)


class Planted(Exception):
    """The failure planted at one step."""


def plant(gw: Gateway, step: str, *, after: bool) -> None:
    """Make `step` fail: before it runs, or once it has opened its part."""
    original = getattr(gw, step)

    async def failing(stack: Any) -> None:
        if after:
            await original(stack)
        raise Planted(step)

    setattr(gw, step, failing)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another socket listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("step", Gateway.STEPS)
async def test_a_start_failing_at_any_step_leaves_nothing_open(
    emulator: Emulator, step: str, after: bool
) -> None:
    baseline = Baseline()
    gw = Gateway(gateway_settings(emulator))
    plant(gw, step, after=after)
    with pytest.raises(Planted, match=step):
        await gw.start()
    await baseline.assert_nothing_left()


@pytest.mark.parametrize("kind", ["COMMSGW_GRPC_ADDR", "COMMSGW_HTTP_ADDR"])
async def test_a_port_taken_fails_the_start_with_its_setting_and_leaves_nothing_open(
    emulator: Emulator, taken_port: int, kind: str
) -> None:
    baseline = Baseline()
    gw = Gateway(gateway_settings(emulator, **{kind: f"127.0.0.1:{taken_port}"}))
    with pytest.raises(ConfigError, match=rf"{kind}=127\.0\.0\.1:{taken_port}: cannot listen"):
        await gw.start()
    await baseline.assert_nothing_left()


async def test_redis_unreachable_fails_the_start_and_leaves_nothing_open(
    emulator: Emulator,
) -> None:
    baseline = Baseline()
    gw = Gateway(gateway_settings(emulator, COMMSGW_EVENT_LOG=f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(EventLogUnavailable, match=r"the event log \(Redis\) is unreachable"):
        await gw.start()
    await baseline.assert_nothing_left()


async def test_a_ca_file_that_does_not_load_fails_the_start_and_leaves_nothing_open(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    # The Graph connection pool's constructor fails: the HTTP port is bound already.
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    baseline = Baseline()
    gw = Gateway(gateway_settings(emulator, COMMSGW_CA_FILE=str(bad)))
    with pytest.raises(ConfigError, match=rf"COMMSGW_CA_FILE={bad}: not a PEM CA bundle"):
        await gw.start()
    await baseline.assert_nothing_left()


async def test_an_http_certificate_that_does_not_load_fails_the_start_and_leaves_nothing_open(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    # The webhook's TLS fails once the log, the hub and the Graph clients are open.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    baseline = Baseline()
    gw = Gateway(
        gateway_settings(emulator, COMMSGW_HTTP_TLS_CERT=str(cert), COMMSGW_HTTP_TLS_KEY=str(key))
    )
    with pytest.raises(ConfigError, match=r"COMMSGW_HTTP_TLS_CERT=.*not a usable certificate"):
        await gw.start()
    await baseline.assert_nothing_left()


async def test_a_failing_part_constructor_leaves_nothing_open(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # KeepAlive's constructor fails after its registry was made and every other part runs.
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("KeepAlive could not be built")

    monkeypatch.setattr(gateway_module, "KeepAlive", broken)
    baseline = Baseline()
    gw = Gateway(gateway_settings(emulator))
    with pytest.raises(RuntimeError, match="KeepAlive could not be built"):
        await gw.start()
    await baseline.assert_nothing_left()


async def test_as_a_context_manager_it_serves_then_leaves_nothing_open(
    emulator: Emulator,
) -> None:
    baseline = Baseline()
    async with Gateway(gateway_settings(emulator)) as gw:
        assert gw.ready
        assert {gw.grpc_port, gw.http_port} <= _listening(_socket_inodes())
        # The warm-up fetched a token and the signing keys: connections are open.
        assert _socket_inodes() - baseline.sockets
    await baseline.assert_nothing_left()


@pytest.mark.parametrize(("part", "name"), [("log", "close"), ("hub", "aclose")])
async def test_a_stop_whose_one_cleanup_fails_runs_every_other_and_raises_it(
    emulator: Emulator, part: str, name: str
) -> None:
    baseline = Baseline()
    gw = Gateway(gateway_settings(emulator))
    original = getattr(getattr(gw, part), name)

    def broken() -> None:
        raise OSError(f"the {part} would not close")

    # Before start: start registers the cleanups it finds.
    setattr(getattr(gw, part), name, broken)
    await gw.start()
    with pytest.raises(OSError, match=f"the {part} would not close"):
        await gw.stop(0)
    # The cleanups before and after the broken one ran: with the broken part's own
    # resources released here, nothing is left.
    result = original()
    if asyncio.iscoroutine(result):
        await result
    await baseline.assert_nothing_left()
    # Stopped: stopping again has nothing left to do.
    await gw.stop(0)
