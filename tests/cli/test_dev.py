"""`make run` and `make demo` as a newcomer runs them: `commsgw dev` (emulator and gateway in
one process, on the default event loop, uvloop) and `commsgw demo` against it: with the demo's
variables, and on free ports (chosen with 0) with the commands `commsgw dev` prints, run as
printed in an environment without any COMMSGW_ variable."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys

import pytest

from helpers.cli import DevProcess, client_env, run_demo

pytestmark = pytest.mark.e2e

# What the demo must print, in this order: each step as it was streamed or answered.
STORY = [
    r"1\. watching every call through the gateway at 127\.0\.0\.1:\d+ \(WatchOperations",
    r"2\. the emulator rings the bot: incoming call (?P<call>[0-9a-f-]{36}) \(callback http://",
    r"3\. streamed: call (?P=call) CHANGE_TYPE_CREATED state CALL_STATE_INCOMING from phone \+\d+"
    r" answer_by=",
    r"4\. answered through the gateway \(AnswerCall\), graph request-id [0-9a-f-]{36}",
    r"5\. streamed: call (?P=call) CHANGE_TYPE_UPDATED state CALL_STATE_ESTABLISHED",
    r"6\. subscribed to tones \(SubscribeToTone\): operation \S+ OPERATION_TYPE_SUBSCRIBE_TO_TONE"
    r" OPERATION_STATUS_COMPLETED",
    r"7\. the menu plays for 20 s on this call \(emulator\)",
    r"8\. the menu starts \(PlayPrompt\): operation (?P<menu>\S+) OPERATION_TYPE_PLAY_PROMPT"
    r" OPERATION_STATUS_RUNNING client_context='ivr-menu'",
    r"9\. the caller presses 1 while the menu plays \(emulator\)",
    r"10\. streamed: call (?P=call) CHANGE_TYPE_UPDATED state CALL_STATE_ESTABLISHED tone TONE_1",
    r"11\. barge-in: cancelled the menu \(CancelMediaProcessing, waited\): operation \S+"
    r" OPERATION_TYPE_CANCEL_MEDIA_PROCESSING OPERATION_STATUS_COMPLETED"
    r" client_context='ivr-barge-in'",
    r"12\. the menu ended, cancelled \(WaitOperation\): operation (?P=menu)"
    r" OPERATION_TYPE_PLAY_PROMPT OPERATION_STATUS_FAILED result=400/8508"
    r" reason=mediaOperationCanceled client_context='ivr-menu'",
    r"13\. the caller will speak for 1\.5 s, then fall silent \(emulator\)",
    r"14\. recorded the message \(RecordResponse, waited\): operation \S+ OPERATION_TYPE_RECORD"
    r" OPERATION_STATUS_COMPLETED result=200/0 reason=maxSilenceTimeout client_context="
    r"'ivr-message' recording=https://127\.0\.0\.1:\d+/_emulator/recordings/",
    r"15\. hung up through the gateway \(HangUpCall\), graph request-id [0-9a-f-]{36}",
    r"16\. streamed: call (?P=call) CHANGE_TYPE_DELETED state CALL_STATE_TERMINATED",
    r"done: the gateway answered the call",
]


async def test_dev_then_demo_tells_the_ivr_story(tmp_path: pathlib.Path) -> None:
    """The demo from its variables (each named in its help): COMMSGW_TARGET, ..._EMULATOR_URL,
    ..._PUBLIC_WEBHOOK_URL and ..._STATE_DIR (where the emulator's CA is)."""
    async with DevProcess(tmp_path) as dev:
        env = {
            "COMMSGW_TARGET": dev.target,
            "COMMSGW_EMULATOR_URL": dev.env["COMMSGW_EMULATOR_URL"],
            "COMMSGW_PUBLIC_WEBHOOK_URL": f"http://127.0.0.1:{dev.http_port}/api/calls",
            "COMMSGW_STATE_DIR": dev.env["COMMSGW_STATE_DIR"],
        }
        demo = await run_demo(cwd=tmp_path, timeout=90, **env)
        text = demo.out
        assert demo.code == 0, text + demo.err
        assert re.search(r"[^\n]*\n".join(STORY), text), text
        assert "recordingAccessToken" not in text and "access_token" not in text
    assert dev.returncode == 0


def _printed(banner: str) -> dict[str, list[str]]:
    """The commands of the banner's "Try it" lines, by subcommand, as a shell splits them."""
    tried = banner.split("Try it", 1)[1].split("Ctrl-C", 1)[0].splitlines()[1:]
    commands = [shlex.split(line, comments=True) for line in tried if line.strip()]
    return {c[-1] if c[-1] == "--help" else c[1]: c for c in commands}


async def test_dev_on_ports_chosen_with_0_prints_commands_that_work_as_printed(
    tmp_path: pathlib.Path,
) -> None:
    """Every port chosen with 0 (gRPC, HTTP, the emulator's), the state in a folder of its own:
    the banner shows the real ports, and its demo and watch lines, run as printed (from the
    folder `commsgw dev` runs in, as the program's path may be relative to it) with no COMMSGW_
    variable set, tell the story and see it."""
    async with DevProcess(
        tmp_path,
        "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--emulator-port", "0",
        "--state-dir", str(tmp_path / "elsewhere"),
    ) as dev:  # fmt: skip
        banner = dev.banner
        emulator = re.search(r"on the Graph emulator \((https://127\.0\.0\.1:(\d+))\)", banner)
        grpc = re.search(r"gRPC +(127\.0\.0\.1:(\d+)) ", banner)
        webhook = re.search(r"webhook +(http://127\.0\.0\.1:(\d+)/api/calls)\n", banner)
        assert emulator and grpc and webhook, banner
        assert f"calls    {emulator.group(1)}/_emulator/  " in banner  # the page's address
        for m in (emulator, grpc, webhook):
            assert int(m.group(2)) > 0, banner  # the real port, not the 0 asked for
        assert {int(m.group(2)) for m in (emulator, grpc, webhook)}.isdisjoint(
            {dev.grpc_port, dev.http_port, dev.emulator_port}
        ), "the flags (port 0) won over the variables"
        commands = _printed(banner)
        assert set(commands) == {"demo", "watch", "--help"}, banner
        demo, watch = commands["demo"], commands["watch"]
        flags = dict(zip(demo[2::2], demo[3::2], strict=True))
        assert flags == {
            "--target": grpc.group(1),
            "--emulator": emulator.group(1),
            "--webhook": webhook.group(1),
            "--emulator-ca": str(tmp_path / "elsewhere" / "emulator-ca.pem"),
        }, demo
        assert watch[1:] == ["watch", "--calls", "--target", grpc.group(1)], watch

        here = os.getcwd()  # where DevProcess runs `commsgw dev`
        watcher = await asyncio.create_subprocess_exec(
            *watch, env=client_env(), cwd=here,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            run = await asyncio.create_subprocess_exec(
                *demo, env=client_env(), cwd=here,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(run.communicate(), 90)
            text = out.decode()
            assert run.returncode == 0, text + err.decode()
            story = re.search(r"[^\n]*\n".join(STORY), text)
            assert story, text
            assert f"callback {webhook.group(1)})" in text
            # The watch, as printed, streamed the demo's call to its end.
            ended = f"call {story['call']} CHANGE_TYPE_DELETED state CALL_STATE_TERMINATED"
            seen = ""
            assert watcher.stdout is not None
            async with asyncio.timeout(30):
                while ended not in seen:
                    line = await watcher.stdout.readline()
                    assert line, f"the watch ended: {seen}"
                    seen += line.decode()
        finally:
            if watcher.returncode is None:
                watcher.send_signal(signal.SIGINT)
            await asyncio.wait_for(watcher.communicate(), 30)
    assert dev.returncode == 0


async def test_demo_names_the_step_that_did_not_come(tmp_path: pathlib.Path) -> None:
    """A gateway whose webhook is not where the emulator calls back: the incoming call never
    reaches the watch, and the demo says so in one line, exit 1."""
    async with DevProcess(tmp_path) as dev:
        demo = await run_demo(
            "--target", dev.target,
            "--emulator", dev.env["COMMSGW_EMULATOR_URL"],
            "--emulator-ca", str(tmp_path / "state" / "emulator-ca.pem"),
            "--webhook", "http://127.0.0.1:9/api/calls", "--step-timeout", "3",
            cwd=tmp_path,
        )  # fmt: skip
    assert demo.code == 1, demo.out + demo.err
    assert "2. the emulator rings the bot" in demo.out
    lines = demo.err.strip().splitlines()
    assert lines == ["demo: step 3 (the INCOMING call update) did not come within 3 s"], lines


async def _demo(*args: str, cwd: pathlib.Path, **env: str) -> tuple[int, str, str]:
    done = await run_demo(*args, cwd=cwd, **env)
    return done.code, done.out, done.err


async def test_demo_without_the_emulators_ca_names_where_it_looked(tmp_path: pathlib.Path) -> None:
    """No CA where the flags say (nothing started here): one line naming the path and the flag
    and variable that set it, exit 2, before anything is asked of the gateway."""
    code, out, err = await _demo(cwd=tmp_path, COMMSGW_STATE_DIR=str(tmp_path / "none"))
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    where = tmp_path / "none" / "emulator-ca.pem"
    assert line.startswith(f"commsgw demo: no emulator CA at {where} (--emulator-ca;"), line
    assert "$COMMSGW_STATE_DIR" in line
    code, _, err = await _demo("--emulator-ca", str(tmp_path / "x.pem"), cwd=tmp_path)
    assert code == 2 and f"no emulator CA at {tmp_path / 'x.pem'} " in err


async def test_demo_without_an_emulator_at_its_url_says_so(tmp_path: pathlib.Path) -> None:
    """A CA but no emulator at --emulator: one line naming the URL and its flag, exit 2."""
    from commsgw.emulator import Emulator, EmulatorConfig
    from commsgw.testing import free_port

    async with Emulator(EmulatorConfig(port=0, state_dir=tmp_path / "state")) as emu:
        ca = str(emu.ca_path)
    url = f"https://127.0.0.1:{free_port()}"
    code, out, err = await _demo("--emulator", url, "--emulator-ca", ca, cwd=tmp_path)
    assert code == 2 and out == "", out + err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"commsgw demo: no emulator answers at {url} (--emulator, "), line


def test_demo_help_names_every_flag_and_its_variable() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "commsgw", "demo", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    for flag, variable in (
        ("--target", "$COMMSGW_TARGET"),
        ("--emulator URL", "$COMMSGW_EMULATOR_URL"),
        ("--webhook URL", "$COMMSGW_PUBLIC_WEBHOOK_URL"),
        ("--emulator-ca PEM", "$COMMSGW_STATE_DIR"),
    ):
        option = text.split(f"  {flag}", 1)[1].split("\n  --", 1)[0]
        assert variable in " ".join(option.split()), (flag, option)


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("--emulator", "http://127.0.0.1:8443"), {}, "--emulator/$COMMSGW_EMULATOR_URL"),
        ((), {"COMMSGW_EMULATOR_URL": "https://h:99999"}, "--emulator/$COMMSGW_EMULATOR_URL"),
        (("--webhook", "127.0.0.1:8080/api/calls"), {}, "--webhook/$COMMSGW_PUBLIC_WEBHOOK_URL"),
    ],
)
async def test_demo_refuses_a_url_that_is_not_one(
    tmp_path: pathlib.Path, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    code, out, err = await _demo(*args, cwd=tmp_path, **env)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"commsgw demo: {named}="), line
