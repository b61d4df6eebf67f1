"""The emulator's timings as flags and ``COMMSGW_EMULATOR_*`` variables (``commsgw emulator`` and
``commsgw dev``), and ``commsgw emulator --help`` naming its controls and the OpenAPI URL."""

from __future__ import annotations

import asyncio
import os
import pathlib
import ssl
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from commsgw.emulator import _control_api
from helpers.cli import DevProcess, run_cli
from helpers.polling import eventually

pytestmark = pytest.mark.e2e

TIMINGS = {
    "--media-op-seconds": "COMMSGW_EMULATOR_MEDIA_OP_SECONDS",
    "--ring-seconds": "COMMSGW_EMULATOR_RING_SECONDS",
    "--answer-window-seconds": "COMMSGW_EMULATOR_ANSWER_WINDOW_SECONDS",
    "--establish-delay-seconds": "COMMSGW_EMULATOR_ESTABLISH_DELAY_SECONDS",
    "--notification-delay-seconds": "COMMSGW_EMULATOR_NOTIFICATION_DELAY_SECONDS",
}


async def test_emulator_help_names_every_control_the_openapi_url_and_the_timings() -> None:
    res = await run_cli("emulator", "--help")
    assert res.code == 0
    assert "/_emulator/openapi.json" in res.out
    for control in _control_api.CONTROLS:
        assert f"{control.method} {control.path}\n" in res.out, control.path
    flat = " ".join(res.out.split())
    for flag, env in TIMINGS.items():
        assert flag in flat and env in flat, flag


async def test_dev_help_has_the_timings() -> None:
    res = await run_cli("dev", "--help")
    assert res.code == 0
    flat = " ".join(res.out.split())
    for flag, env in TIMINGS.items():
        assert f"{flag} SECONDS" in flat and env in flat, flag


@asynccontextmanager
async def _emulator(
    state: pathlib.Path, *args: str, env: Mapping[str, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, asyncio.subprocess.Process]]:
    """`commsgw emulator` on a free port; an httpx client on its base URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "commsgw", "emulator", "--port", "0", "--state-dir", str(state),
        *args, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: dict[str, str] = {}
    try:
        async with asyncio.timeout(30):
            while "controls" not in lines:
                key, _, value = (await proc.stdout.readline()).decode().strip().partition("=")
                assert key, "the emulator ended before it printed its URLs"
                lines[key] = value
        assert lines["controls"] == f"{lines['base_url']}/_emulator/openapi.json"
        async with httpx.AsyncClient(
            base_url=lines["base_url"],
            verify=ssl.create_default_context(cafile=lines["ca_path"]),
            timeout=5,
        ) as client:
            yield client, proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def test_emulator_takes_its_timings_from_flags_and_the_environment(
    tmp_path: pathlib.Path,
) -> None:
    env = {"COMMSGW_EMULATOR_ANSWER_WINDOW_SECONDS": "0.2", "COMMSGW_EMULATOR_RING_SECONDS": "4"}
    async with _emulator(tmp_path, "--ring-seconds", "2.5", env=env) as (client, _):
        timings = (await client.get("/_emulator/health")).json()["timings"]
        assert timings["answerWindowSeconds"] == 0.2  # from the environment
        assert timings["ringSeconds"] == 2.5  # the flag wins
        assert timings["mediaOpSeconds"] == 1.0  # the default
        # the answer window applies: a call nobody answers is dropped after 0.2 s, not 15
        cb = "https://127.0.0.1:9/cb"
        call_id = (await client.post("/_emulator/calls", json={"callbackUri": cb})).json()["id"]

        async def ended() -> bool:
            snapshot: dict[str, Any] = (await client.get(f"/_emulator/calls/{call_id}")).json()
            return snapshot["state"] == "terminated"

        await eventually(ended, timeout=10)
        assert (await client.get("/_emulator/openapi.json")).json()["openapi"] == "3.1.0"


async def test_emulator_refuses_a_bad_timing_variable(tmp_path: pathlib.Path) -> None:
    res = await run_cli(
        "emulator", "--port", "0", "--state-dir", str(tmp_path),
        env={"COMMSGW_EMULATOR_MEDIA_OP_SECONDS": "soon"},
    )  # fmt: skip
    assert res.code == 2 and "COMMSGW_EMULATOR_MEDIA_OP_SECONDS" in res.err


async def test_dev_passes_its_timings_to_the_emulator(tmp_path: pathlib.Path) -> None:
    env = {"COMMSGW_EMULATOR_NOTIFICATION_DELAY_SECONDS": "0.01"}
    async with DevProcess(tmp_path, "--media-op-seconds", "7", **env) as dev:
        state = tmp_path / "state"
        ca = next(state.glob("*ca*.pem"))
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(ca)), timeout=5
        ) as client:
            url = f"https://127.0.0.1:{dev.emulator_port}/_emulator/health"
            timings = (await client.get(url)).json()["timings"]
    assert timings["mediaOpSeconds"] == 7.0
    assert timings["notificationDelaySeconds"] == 0.01
