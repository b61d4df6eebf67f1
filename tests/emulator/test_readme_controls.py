"""README's "The emulator's control API" stays true: it names every control, and its curl
examples (one per control) run against an emulator and succeed."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
from collections.abc import AsyncIterator

import pytest

from commsgw.emulator import Emulator
from commsgw.emulator._control_api import CONTROLS, Control
from helpers.emulator import CallbackReceiver
from helpers.emulator_calls import (
    USER_ID,
    Graph,
    call_body,
    emulator_and_graph,
    last_state,
    op_done,
    target,
    wait_for,
)

pytestmark = pytest.mark.e2e

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## The emulator's control API")
    return text[start : text.index("\n## ", start + 1)]


def _examples() -> str:
    section = _section()
    block = section.split("<!-- emulator-controls:start -->")[1].split(
        "<!-- emulator-controls:end"
    )[0]
    return block.strip().removeprefix("```sh").removesuffix("```").strip()


def _example_of(control: Control, lines: list[str]) -> list[str]:
    if control.operation_id == "downloadRecording":  # a recording's own URL, as Graph gives it
        return [line for line in lines if '"$RECORDING_URL"' in line]
    path = re.escape(control.path.removeprefix("/_emulator"))
    path = re.sub(r"\\\{\w+\\\}", r"[^/\"? ]+", path)
    rx = re.compile(rf"\$E{path}(?:[\"?\s]|$)")
    method = rf"-X {control.method}\b"
    return [
        line
        for line in lines
        if rx.search(line)
        and (re.search(method, line) if control.method != "GET" else "-X " not in line)
    ]


def test_the_section_names_every_control_and_gives_one_example_each() -> None:
    rows = [line for line in _section().splitlines() if line.startswith("| `")]
    lines = [line for line in _examples().splitlines() if line.startswith("$C ")]
    for control in CONTROLS:
        assert any(control.path + "`" in row and control.method in row for row in rows), (
            f"README's table lacks {control.method} {control.path}"
        )
        assert len(_example_of(control, lines)) == 1, f"{control.method} {control.path}"
    assert len(lines) == len(CONTROLS)


@pytest.fixture
async def emu_graph(tmp_path: pathlib.Path) -> AsyncIterator[tuple[Emulator, Graph]]:
    async with emulator_and_graph(tmp_path / "emu", ring_s=0, media_op_seconds=0.05) as pair:
        yield pair


async def test_the_examples_run(emu_graph: tuple[Emulator, Graph], tmp_path: pathlib.Path) -> None:
    emu, graph = emu_graph
    async with CallbackReceiver() as rx:
        calls = [await graph.create_ok(call_body(rx.url, targets=[target("user", USER_ID)]))]
        calls.append(await graph.create_ok(call_body(rx.url, targets=[target("user", USER_ID)])))
        for c in calls:
            await wait_for(lambda c=c: last_state(rx, c) == "established")
        op = (await graph.act(calls[0], "recordResponse", {"maxRecordDurationInSeconds": 1})).json()
        done = await wait_for(lambda: op_done(rx, calls[0], op["id"]))
        lines = _examples().splitlines()
        assert lines[0].startswith("E=") and lines[1].startswith("C=")
        script = "\n".join(
            [
                f"E={emu.base_url}/_emulator",
                f"C='curl -sS --cacert {emu.ca_path} -H content-type:application/json "
                "-w \\nHTTP_STATUS=%{http_code}\\n'",
                *lines[2:],
            ]
        )
        env = {
            **os.environ,
            "CALL": calls[0],
            "CALL2": calls[1],
            "RECORDING_URL": done["recordingLocation"],
            "RECORDING_TOKEN": done["recordingAccessToken"],
        }
        proc = await asyncio.create_subprocess_exec(
            "bash", "-euc", script, cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    statuses = re.findall(r"HTTP_STATUS=(\d+)", out.decode())
    commands = [line for line in lines if line.startswith("$C ")]
    assert len(statuses) == len(commands), out.decode()
    failed = [(cmd, s) for cmd, s in zip(commands, statuses, strict=True) if not s.startswith("2")]
    assert failed == [], out.decode()
    assert (tmp_path / "message.wav").read_bytes()[:4] == b"RIFF"
    assert emu.calls == {}  # the last example resets it
