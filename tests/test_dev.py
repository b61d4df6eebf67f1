"""`make run` and `make demo` as a newcomer runs them: `commsgw dev` (emulator and gateway in
one process, on the default event loop, uvloop) and `commsgw demo` against it."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sys

import pytest

from commsgw.testing import free_port

pytestmark = pytest.mark.e2e


async def test_dev_then_demo_tells_the_cancellation_story(tmp_path: pathlib.Path) -> None:
    grpc_port, http_port, emu_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "COMMSGW_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
        "COMMSGW_HTTP_ADDR": f"127.0.0.1:{http_port}",
        "COMMSGW_STATE_DIR": str(tmp_path / "state"),
        "COMMSGW_EMULATOR_URL": f"https://127.0.0.1:{emu_port}",
    }
    dev = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "commsgw", "dev", "--emulator-port", str(emu_port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert dev.stdout is not None
    try:
        banner = b""
        async with asyncio.timeout(60):
            while b"Ctrl-C stops both" not in banner:
                line = await dev.stdout.readline()
                assert line, f"commsgw dev exited: {banner.decode(errors='replace')}"
                banner += line
        demo = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "commsgw", "demo",
            "--target", f"127.0.0.1:{grpc_port}",
            "--webhook", f"http://127.0.0.1:{http_port}/api/calls",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(demo.communicate(), 60)
        text = out.decode()
        assert demo.returncode == 0, text + err.decode()
        assert text.count("OPERATION_STATUS_FAILED result=400/8508") == 3
        assert "done: every queued operation came back cancelled" in text
    finally:
        if dev.returncode is None:
            dev.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(dev.wait(), 30)
            except TimeoutError:
                dev.kill()
                await dev.wait()
    assert dev.returncode == 0
