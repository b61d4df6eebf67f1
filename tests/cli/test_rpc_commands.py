"""A command per family of RPCs, as processes against a live gateway and emulator: the call
lifecycle, media (with --wait), participants and operations, their short output, their
--json and their one-line errors."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest

from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway
from helpers.cli import Result, run_cli
from helpers.emulator_calls import USER_2, USER_3, USER_ID
from helpers.gateway import webhook_url
from helpers.polling import eventually

# Prompts short enough to wait for (conftest's emulator, used by its gateway).
pytestmark = [pytest.mark.e2e, pytest.mark.emulator_timings(media_op_seconds=1.5)]

MENU = "https://cdn.contoso.com/ivr/menu.wav"


def cli(gateway: Gateway) -> Callable[..., Awaitable[Result]]:
    """`commsgw COMMAND ARGS --target <the gateway>`."""

    async def run(command: str, *args: str) -> Result:
        return await run_cli(*command.split(), *args, "--target", f"127.0.0.1:{gateway.grpc_port}")

    return run


def ok(res: Result) -> str:
    assert res.code == 0, res.err
    return res.out


async def established(emu: Emulator, call_id: str) -> None:
    await eventually(lambda: emu.calls[call_id].state == "established", what="established")


async def test_an_incoming_call_handled_from_the_command_line(
    emulator: Emulator, gateway: Gateway
) -> None:
    run = cli(gateway)
    call_id = emulator.ring(webhook_url(gateway))
    out = ok(await run("answer", "--call-id", call_id))
    assert out.startswith("done\ngraph request-id ")
    await established(emulator, call_id)
    out = ok(await run("get", "--call-id", call_id))
    assert f"call {call_id} CALL_STATE_ESTABLISHED CALL_DIRECTION_INCOMING from phone" in out

    out = ok(await run("subscribe-tones", "--call-id", call_id))
    assert "OPERATION_TYPE_SUBSCRIBE_TO_TONE OPERATION_STATUS_COMPLETED" in out
    out = ok(await run("play", "--call-id", call_id, MENU, MENU, "--client-context", "menu",
                       "--wait"))  # fmt: skip
    assert out.strip().endswith("reason=completedSuccessfully client_context='menu'"), out
    assert "OPERATION_TYPE_PLAY_PROMPT OPERATION_STATUS_COMPLETED result=200/0" in out

    record = await run("record", "--call-id", call_id, "--max-duration", "5", "--stop-tone", "#",
                       "--no-beep", "--wait", "--json")  # fmt: skip
    op = json.loads(ok(record))
    assert op["type"] == "OPERATION_TYPE_RECORD" and op["status"] == "OPERATION_STATUS_COMPLETED"
    assert op["recordingLocation"].startswith(emulator.base_url)

    out = ok(await run("dtmf", "--call-id", call_id, "12#", "--wait"))
    assert "OPERATION_TYPE_SEND_DTMF_TONES OPERATION_STATUS_COMPLETED" in out
    for command, kind in (("mute", "MUTE"), ("unmute", "UNMUTE")):
        out = ok(await run(command, "--call-id", call_id))
        assert f"OPERATION_TYPE_{kind}_PARTICIPANT OPERATION_STATUS_COMPLETED" in out
    out = ok(await run("recording-status", "--call-id", call_id, "recording"))
    assert "OPERATION_TYPE_UPDATE_RECORDING_STATUS OPERATION_STATUS_COMPLETED" in out
    assert ok(await run("keepalive", "--call-id", call_id)).startswith("done\n")

    out = ok(await run("hangup", "--call-id", call_id))
    assert out.startswith("done\ngraph request-id ")
    again = await run("hangup", "--call-id", call_id)
    assert again.code == 1 and len(again.err_lines) == 1
    assert again.err_lines[0].startswith("error: NOT_FOUND: ")


async def test_operations_and_a_wait_that_runs_out(emulator: Emulator, gateway: Gateway) -> None:
    run = cli(gateway)
    call_id = emulator.ring(webhook_url(gateway))
    ok(await run("answer", "--call-id", call_id))
    await established(emulator, call_id)
    started = json.loads(ok(await run("play", "--call-id", call_id, MENU, "--json")))
    op_id = started["operation"]["id"]
    assert started["location"].endswith(f"/operations/{op_id}")
    out = ok(await run("operation", "--call-id", call_id, "--operation-id", op_id))
    assert f"operation {op_id} OPERATION_TYPE_PLAY_PROMPT" in out and "\nsource " in out
    out = ok(await run("wait", "--call-id", call_id, "--operation-id", op_id))
    assert out.strip() == (
        f"operation {op_id} OPERATION_TYPE_PLAY_PROMPT OPERATION_STATUS_COMPLETED result=200/0 "
        "reason=completedSuccessfully"
    )

    # A wait shorter than the prompt: exit 1, OPERATION_NOT_DONE with the last known state.
    late = await run("play", "--call-id", call_id, MENU, "--wait", "--timeout", "0.5", "--json")
    assert late.code == 1 and late.out == ""
    error = json.loads(late.err)["error"]
    assert error["code"] == "DEADLINE_EXCEEDED" and error["reason"] == "OPERATION_NOT_DONE"
    assert error["operation"]["status"] in (
        "OPERATION_STATUS_RUNNING",
        "OPERATION_STATUS_NOT_STARTED",
    )
    late = await run("play", "--call-id", call_id, MENU, "--wait", "--timeout", "0.5")
    assert late.code == 1 and len(late.err_lines) == 1
    assert late.err_lines[0].startswith("error: DEADLINE_EXCEEDED: ")
    assert "(reason=OPERATION_NOT_DONE)" in late.err_lines[0]


async def test_participants(emulator: Emulator, gateway: Gateway) -> None:
    run = cli(gateway)
    call_id = emulator.ring(webhook_url(gateway))
    ok(await run("answer", "--call-id", call_id))
    await established(emulator, call_id)
    out = ok(await run("participants invite", "--call-id", call_id, "--user", USER_2, "--wait"))
    assert "OPERATION_TYPE_INVITE_PARTICIPANTS OPERATION_STATUS_COMPLETED" in out
    listed = json.loads(ok(await run("participants list", "--call-id", call_id, "--json")))
    invited = [
        p
        for p in listed["participants"]
        if p["info"]["identity"].get("user", {}).get("id") == USER_2
    ]
    assert len(invited) == 1, listed
    pid = invited[0]["id"]
    out = ok(await run("participants list", "--call-id", call_id))
    assert f"participant {pid} user {USER_2}" in out
    out = ok(await run("participants mute", "--call-id", call_id, "--participant-id", pid))
    assert "OPERATION_TYPE_MUTE_PARTICIPANT" in out
    music = "https://cdn.contoso.com/hold.wav"
    held = ("participants hold", "--call-id", call_id, "--participant-id", pid, "--music", music)
    out = ok(await run(*held, "--wait"))
    assert "OPERATION_TYPE_START_HOLD_MUSIC OPERATION_STATUS_COMPLETED" in out
    assert emulator.calls[call_id].participants[pid].on_hold
    out = ok(await run("participants unhold", "--call-id", call_id, "--participant-id", pid))
    assert "OPERATION_TYPE_STOP_HOLD_MUSIC" in out
    out = ok(await run("participants remove", "--call-id", call_id, "--participant-id", pid))
    assert out.startswith("done\n")


async def test_outgoing_calls_and_incoming_ones_sent_away(
    emulator: Emulator, gateway: Gateway
) -> None:
    run = cli(gateway)
    created = json.loads(ok(await run("create", "--user", USER_ID, "--subject", "hi", "--json")))
    call_id = created["call"]["id"]
    assert created["call"]["state"] == "CALL_STATE_ESTABLISHING"
    out = ok(await run("get", "--call-id", call_id))
    assert f"call {call_id} " in out and f"to user {USER_ID}" in out
    await established(emulator, call_id)
    assert ok(await run("transfer", "--call-id", call_id, "--user", USER_3)).startswith("done\n")
    two = await run("transfer", "--call-id", call_id, "--user", USER_3, "--phone", "+14255550123")
    assert two.code == 2 and two.err_lines == [
        "commsgw transfer: give exactly one of --user, --phone or --app"
    ]

    rung = emulator.ring(webhook_url(gateway))
    assert ok(await run("reject", "--call-id", rung, "--reason", "busy")).startswith("done\n")
    rung = emulator.ring(webhook_url(gateway))
    out = ok(await run("redirect", "--call-id", rung, "--user", USER_2, "--ring-seconds", "20"))
    assert out.startswith("done\n")
    bad = await run("redirect", "--call-id", rung, "--ring-seconds", "20")
    assert bad.code == 1 and "reason=NO_TARGET" in bad.err_lines[0]
