"""`commsgw watch` as a process: it gives up on a gateway it cannot reach (one line naming the
target), prints its last resume token and exits 130/143 on SIGINT/SIGTERM, and after a restart
of a gateway with the in-memory log either exits (OUT_OF_RANGE) or starts again with a
snapshot (--on-expired=snapshot)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sys
import time
from collections.abc import AsyncIterator

import pytest

from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway
from commsgw.testing import GatewayProcess, free_port
from helpers.cli import run_cli
from helpers.gateway import process_env

pytestmark = pytest.mark.e2e


class Watch:
    """A `commsgw watch` process whose stdout is read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *args: str) -> Watch:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "commsgw", "watch", *args, env=dict(os.environ),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def line_with(self, text: str, timeout: float = 30) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    _, err = await self.ended()
                    raise AssertionError(f"the watch ended, before {text!r}: {err}")
                if text in line:
                    return line

    async def ended(self, timeout: float = 30) -> tuple[int, list[str]]:
        assert self.proc.stderr is not None
        err = await asyncio.wait_for(self.proc.stderr.read(), timeout)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        return code, [line for line in err.decode().splitlines() if line.strip()]

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@pytest.fixture
async def watches() -> AsyncIterator[list[Watch]]:
    started: list[Watch] = []
    try:
        yield started
    finally:
        for w in started:
            w.kill()
            await w.proc.wait()


async def test_gives_up_on_a_gateway_it_cannot_reach() -> None:
    target = f"127.0.0.1:{free_port()}"
    began = time.monotonic()
    res = await run_cli("watch", "--target", target, "--give-up-after", "2s")
    assert res.code == 1
    assert time.monotonic() - began < 20
    assert len(res.err_lines) == 1, res.err
    line = res.err_lines[0]
    assert line.startswith(f"error: UNAVAILABLE: gave up after 2 s: the gateway at {target} "), line


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_a_signal_prints_the_last_resume_token(
    gateway: Gateway, watches: list[Watch], signum: int, code: int
) -> None:
    watch = await Watch.start("--target", f"127.0.0.1:{gateway.grpc_port}", "--calls")
    watches.append(watch)
    await watch.line_with("bookmark BOOKMARK_KIND_START")
    watch.proc.send_signal(signum)
    exit_code, err = await watch.ended()
    assert exit_code == code
    assert len(err) == 1 and err[0].startswith("resume token: ") and len(err[0]) > 20, err


async def test_after_a_gateway_restart_the_token_has_expired(
    emulator: Emulator, tmp_path: pathlib.Path, watches: list[Watch]
) -> None:
    env = process_env(emulator)
    first = GatewayProcess(env, tmp_path / "first.log")
    await first.start()
    try:
        exits = await Watch.start("--target", first.target, "--calls")
        again = await Watch.start("--target", first.target, "--calls", "--on-expired", "snapshot")
        watches += [exits, again]
        for w in (exits, again):
            await w.line_with("bookmark BOOKMARK_KIND_START")
    finally:
        first.terminate()
    second = GatewayProcess(env, tmp_path / "second.log")
    second.grpc_port = first.grpc_port  # the same address, a new in-memory log
    second.env["COMMSGW_GRPC_ADDR"] = first.target
    await second.start()
    try:
        code, err = await exits.ended()
        assert code == 1
        assert err[0].startswith("error: OUT_OF_RANGE: "), err
        assert "reason=RESUME_TOKEN_EXPIRED" in err[0]
        await again.line_with("bookmark BOOKMARK_KIND_SNAPSHOT_END")
        again.proc.send_signal(signal.SIGTERM)
        code, err = await again.ended()
        assert code == 143
        assert err[0].startswith("watch: the resume token expired (OUT_OF_RANGE"), err
        assert "starting again with a snapshot" in err[0]
        assert err[-1].startswith("resume token: ")
    finally:
        second.terminate()
