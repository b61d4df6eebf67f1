"""`make run` and `make demo` as a newcomer runs them: `commsgw dev` (emulator and gateway in
one process, on the default event loop, uvloop) and `commsgw demo` against it."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import sys

import pytest

from helpers.cli import DevProcess

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
    async with DevProcess(tmp_path) as dev:
        demo = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "commsgw", "demo",
            env={**dev.env, "COMMSGW_TARGET": dev.target},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(demo.communicate(), 90)
        text = out.decode()
        assert demo.returncode == 0, text + err.decode()
        assert re.search(r"[^\n]*\n".join(STORY), text), text
        assert "recordingAccessToken" not in text and "access_token" not in text
    assert dev.returncode == 0


async def test_demo_names_the_step_that_did_not_come(tmp_path: pathlib.Path) -> None:
    """A gateway whose webhook is not where the emulator calls back: the incoming call never
    reaches the watch, and the demo says so in one line, exit 1."""
    async with DevProcess(tmp_path) as dev:
        demo = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "commsgw", "demo", "--target", dev.target,
            "--webhook", "http://127.0.0.1:9/api/calls", "--step-timeout", "3",
            env=dev.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(demo.communicate(), 60)
    assert demo.returncode == 1, out.decode() + err.decode()
    assert "2. the emulator rings the bot" in out.decode()
    lines = err.decode().strip().splitlines()
    assert lines == ["demo: step 3 (the INCOMING call update) did not come within 3 s"], lines


async def test_demo_refuses_without_the_emulator(tmp_path: pathlib.Path) -> None:
    env = {
        **os.environ,
        "AZURE_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "AZURE_CLIENT_SECRET": "not-used",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "commsgw", "demo", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "emulator only" in err.decode() and out == b""
