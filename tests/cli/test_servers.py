"""`commsgw serve`, `commsgw dev` and `commsgw emulator` as processes: an address in use is one
line naming it (exit 2, no traceback), and dev's logs honour --log-format and --log-level, the
text format carrying each RPC's duration, caller and request ids."""

from __future__ import annotations

import json
import pathlib
import re
import socket
from collections.abc import Iterator

import pytest

from commsgw.emulator import Emulator
from commsgw.testing import free_port
from helpers.cli import DevProcess, run_cli
from helpers.gateway import process_env
from helpers.ids import new_guid

pytestmark = pytest.mark.e2e


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port something listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("setting", ["COMMSGW_GRPC_ADDR", "COMMSGW_HTTP_ADDR"])
async def test_serve_on_an_address_in_use(emulator: Emulator, taken: int, setting: str) -> None:
    env = {
        **process_env(emulator),
        "COMMSGW_GRPC_ADDR": "127.0.0.1:0",
        "COMMSGW_HTTP_ADDR": "127.0.0.1:0",
        setting: f"127.0.0.1:{taken}",
    }
    res = await run_cli("serve", env=env)
    assert res.code == 2
    assert _one_line(res.err) == (
        f"commsgw serve: cannot listen on 127.0.0.1:{taken} ({setting}): address already in use"
    )


@pytest.mark.parametrize("which", ["grpc", "http", "emulator"])
async def test_dev_on_an_address_in_use(tmp_path: pathlib.Path, taken: int, which: str) -> None:
    ports = {"grpc": free_port(), "http": free_port(), "emulator": free_port(), which: taken}
    env = {
        "COMMSGW_GRPC_ADDR": f"127.0.0.1:{ports['grpc']}",
        "COMMSGW_HTTP_ADDR": f"127.0.0.1:{ports['http']}",
        "COMMSGW_EMULATOR_URL": f"https://127.0.0.1:{ports['emulator']}",
        "COMMSGW_STATE_DIR": str(tmp_path / "state"),
    }
    res = await run_cli("dev", env=env)
    assert res.code == 2
    line = _one_line(res.err)
    assert line.startswith(f"commsgw dev: cannot listen on 127.0.0.1:{taken} ("), line
    assert line.endswith("address already in use")


async def test_emulator_on_a_port_in_use(tmp_path: pathlib.Path, taken: int) -> None:
    res = await run_cli("emulator", "--port", str(taken), "--state-dir", str(tmp_path))
    assert res.code == 2
    line = _one_line(res.err)
    assert line.startswith(f"commsgw emulator: cannot listen on 127.0.0.1:{taken}: "), line


async def test_emulator_help_explains_every_flag() -> None:
    res = await run_cli("emulator", "--help")
    assert res.code == 0
    for flag in ("--host", "--tenant-id", "--client-id", "--client-secret", "--media-op-seconds"):
        assert re.search(rf"{flag} \S+\s+\S", res.out), flag


async def test_dev_honours_log_format_json_and_level_debug(tmp_path: pathlib.Path) -> None:
    async with DevProcess(tmp_path, "--log-format", "json", "--log-level", "DEBUG") as dev:
        res = await run_cli("cancel", "--call-id", new_guid(), "--target", dev.target)
        assert res.code == 1
    lines = [json.loads(line) for line in dev.logs().splitlines() if line.strip()]
    assert any(r["level"] == "DEBUG" and r["logger"] == "commsgw.cli" for r in lines), lines[:5]
    rpc = [r for r in lines if r.get("rpc") == "CancelMediaProcessing"]
    assert rpc and rpc[0]["code"] == "NOT_FOUND" and rpc[0]["duration_ms"] > 0


async def test_dev_text_logs_carry_each_rpcs_fields(tmp_path: pathlib.Path) -> None:
    crid = new_guid()
    async with DevProcess(tmp_path) as dev:
        res = await run_cli("cancel", "--call-id", new_guid(), "--target", dev.target,
                            "--client-request-id", crid)  # fmt: skip
        assert res.code == 1
    found = re.search(
        rf"INFO commsgw\.rpc: rpc CancelMediaProcessing NOT_FOUND [0-9.]+ms caller=local "
        rf"crid={crid} graph_rid=[0-9a-f-]{{36}}\n",
        dev.logs(),
    )
    assert found, dev.logs()
    assert "DEBUG" not in dev.logs()
