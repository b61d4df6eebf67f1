"""commsgw_client.testing: the emulator's control client over real HTTPS against a `commsgw dev`
(the plugin's own fixtures: one process for the module's tests, reset before each), the gateway
driven through the real client; and run_commsgw_dev's start, stop and failures."""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

import pytest

from commsgw_client import GatewayError, SyncGatewayClient
from commsgw_client.testing import (
    CommsgwDev,
    CommsgwDevError,
    EmulatorClient,
    EmulatorError,
    commsgw_command,
    run_commsgw_dev,
)
from helpers.orphans import reap, wait_gone

e2e = pytest.mark.e2e


def _wait_state(emulator: EmulatorClient, call_id: str, state: str) -> None:
    deadline = time.monotonic() + 15
    while (now := emulator.call(call_id).state) != state:
        assert time.monotonic() < deadline, f"call {call_id} stayed {now}, never {state}"
        time.sleep(0.02)


def _answered(dev: CommsgwDev, **ring: object) -> tuple[str, SyncGatewayClient]:
    call_id = dev.emulator.ring(**ring)  # type: ignore[arg-type]
    gw = SyncGatewayClient(dev.target)
    gw.answer_call(call_id, timeout=15)
    _wait_state(dev.emulator, call_id, "established")
    return call_id, gw


@e2e
def test_ring_and_script_the_far_end(commsgw: CommsgwDev) -> None:
    emulator = commsgw.emulator
    assert emulator.health().base_url == commsgw.emulator_url
    call_id = emulator.ring(
        "8f1f2b40-6c8e-4b5a-9d3e-2a7c1e4f5b60", caller_name="Adele", answer_window_s=30, prompt_s=4
    )
    call = emulator.call(call_id)
    assert (call.id, call.state, call.prompt_s) == (call_id, "incoming", 4.0)
    assert call.raw["source"]["identity"]["user"]["displayName"] == "Adele"
    assert call.callback_uri == commsgw.webhook_url
    assert [c.id for c in emulator.calls()] == [call_id]
    assert emulator.set_media(call_id, prompt_s=2.5) == 2.5
    speech = emulator.set_caller(call_id, speech_after_s=None, speech_s=None)
    assert (speech.speech_after_s, speech.speech_s) == (None, None)
    assert emulator.call(call_id).caller == speech

    gw = SyncGatewayClient(commsgw.target)
    gw.answer_call(call_id, timeout=15)
    _wait_state(emulator, call_id, "established")
    gw.subscribe_to_tone(call_id, wait=True, timeout=15)
    assert emulator.press_tones(call_id, "12").sequence_ids == [1, 2]
    later = emulator.press_tones(call_id, ["pound"], after_s=0.5, interval_s=0.1)
    assert (later.sequence_ids, later.due_s) == ([], [0.5])
    armed = emulator.delivery_faults(call_id, "duplicate", count=2, match={"changeType": "deleted"})
    assert [(f.kind, f.count, f.match) for f in armed] == [
        ("duplicate", 2, {"changeType": "deleted"})
    ]
    emulator.hang_up(call_id)
    _wait_state(emulator, call_id, "terminated")
    deadline = time.monotonic() + 15  # the terminated notification, posted twice
    while sum(d.misdelivery == "duplicate" for d in emulator.deliveries(call_id=call_id)) < 1:
        assert time.monotonic() < deadline, emulator.deliveries(call_id=call_id)
        time.sleep(0.02)
    deliveries = emulator.deliveries(call_id=call_id)
    assert {d.call_id for d in deliveries} == {call_id}
    assert {d.url for d in deliveries} == {commsgw.webhook_url}
    assert all(d.status == 202 for d in deliveries), deliveries


@e2e
def test_a_dropped_call_is_gone_for_graph(commsgw: CommsgwDev) -> None:
    emulator = commsgw.emulator
    call_id, gw = _answered(commsgw)
    emulator.drop(call_id)
    with pytest.raises(EmulatorError) as err:
        emulator.hang_up(call_id)
    assert err.value.status == 404
    with pytest.raises(GatewayError):
        gw.play_prompt(call_id, ["https://cdn.example/a.wav"], timeout=15)
    emulator.verify(1, method="POST", path_pattern="/playPrompt$", call_id=call_id, status=404)


@e2e
def test_a_refused_control_raises_with_the_emulators_json_error(commsgw: CommsgwDev) -> None:
    emulator = commsgw.emulator
    call_id = emulator.ring()
    with pytest.raises(EmulatorError) as conflict:
        emulator.press_tones(call_id, "1")  # not answered yet
    assert (conflict.value.status, conflict.value.code) == (409, "Conflict")
    assert conflict.value.body["error"]["message"] == conflict.value.message
    assert "incoming, not established" in str(conflict.value)
    with pytest.raises(EmulatorError) as unknown:
        emulator.call("6f1d1a3e-0000-4000-8000-000000000001")
    assert (unknown.value.status, unknown.value.code) == (404, "itemNotFound")
    with pytest.raises(EmulatorError) as bad:
        emulator.delivery_faults(call_id, "sideways")  # type: ignore[arg-type]
    assert (bad.value.status, bad.value.code) == (400, "BadRequest")
    assert "$.kind" in bad.value.message
    with pytest.raises(EmulatorError) as bad_filter:
        emulator.requests(path="(unclosed")
    assert bad_filter.value.status == 400 and "regular expression" in bad_filter.value.message
    with pytest.raises(ValueError, match="call_id"):
        emulator.hang_up("")
    with pytest.raises(EmulatorError) as token:
        emulator.download_recording(f"{commsgw.emulator_url}/_emulator/recordings/x", "wrong")
    assert token.value.status in (401, 404)


@e2e
def test_no_emulator_there_is_an_error_naming_it(commsgw: CommsgwDev) -> None:
    with (
        EmulatorClient("https://127.0.0.1:9", ca_file=commsgw.ca_file) as gone,
        pytest.raises(EmulatorError) as err,
    ):
        gone.reset()
    assert err.value.status is None
    assert "https://127.0.0.1:9/_emulator/reset" in str(err.value)


@e2e
def test_the_journal_filters_counts_and_verifies(commsgw: CommsgwDev) -> None:
    emulator = commsgw.emulator
    call_id, gw = _answered(commsgw)
    gw.play_prompt(call_id, ["https://cdn.example/a.wav"], client_context="menu", timeout=15)
    (entry,) = emulator.requests(path="/playPrompt$", method="post", call_id=call_id)
    assert (entry.method, entry.call_id, entry.status) == ("POST", call_id, 200)
    assert entry.body["clientContext"] == "menu"
    found = emulator.count_requests(path_pattern="/playPrompt$", body={"clientContext": "menu"})
    assert found.count == 1 and found.requests == [entry]
    assert (
        emulator.count_requests(path_pattern="/playPrompt$", body={"clientContext": "x"}).count == 0
    )
    assert emulator.verify(method="POST", path_pattern="/answer$", call_id=call_id).count == 1
    with pytest.raises(AssertionError) as wrong:
        emulator.verify(2, path_pattern="/playPrompt$", call_id=call_id)
    message = str(wrong.value)
    assert message.startswith('expected 2 request(s) matching {"callId": "')
    assert "found 1" in message and f"POST /v1.0/communications/calls/{call_id}/answer" in message
    assert emulator.wait_for_requests(path_pattern="/playPrompt$", timeout=5).count == 1
    with pytest.raises(AssertionError, match=r"expected at least 1 within 0.2 s"):
        emulator.wait_for_requests(path_pattern="/never$", timeout=0.2)


@e2e
def test_faults_arm_list_and_clear(commsgw: CommsgwDev) -> None:
    emulator = commsgw.emulator
    fault = emulator.add_fault("/playPrompt$", method="POST", status=429, count=2, retry_after=1)
    assert (fault.path_pattern, fault.status, fault.remaining, fault.retry_after) == (
        "/playPrompt$", 429, 2, 1.0
    )  # fmt: skip
    other = emulator.add_fault("/answer$", reset_connection=True)
    assert [f.id for f in emulator.faults()] == [fault.id, other.id]
    emulator.clear_faults()
    assert emulator.faults() == []


@e2e
def test_reset_empties_calls_journal_and_faults(commsgw: CommsgwDev) -> None:
    emulator = commsgw.emulator
    _answered(commsgw)
    emulator.add_fault("/x$")
    assert emulator.calls() and emulator.requests() and emulator.faults()
    emulator.reset()
    assert (emulator.calls(), emulator.requests(), emulator.faults()) == ([], [], [])
    assert emulator.deliveries() == []


@e2e
def test_run_commsgw_dev_starts_ready_and_stops_on_sigterm(tmp_path: pathlib.Path) -> None:
    with run_commsgw_dev(tmp_path, args=["--media-op-seconds", "0.25"]) as dev:
        assert dev.ca_file == tmp_path / "state" / "emulator-ca.pem" and dev.ca_file.is_file()
        assert dev.emulator.health().timings["mediaOpSeconds"] == 0.25
        assert dev.env["COMMSGW_TARGET"] == dev.target
        ready = json.loads((tmp_path / "ready.json").read_text())  # where the addresses came from
        assert (ready["target"], ready["emulatorUrl"], ready["pid"]) == (
            dev.target, dev.emulator_url, dev.process.pid
        )  # fmt: skip
        assert "--exit-with-parent" in dev.process.args
    assert dev.process.returncode == 0
    assert "commsgw is running on the Graph emulator" in dev.log_path.read_text()


HOLDER = """
import signal, sys
from commsgw_client.testing import run_commsgw_dev
with run_commsgw_dev(sys.argv[1]) as dev:
    print(dev.process.pid, flush=True)
    signal.pause()
"""


@e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--exit-with-parent is Linux's")
def test_a_dev_does_not_outlive_the_test_process_that_started_it(tmp_path: pathlib.Path) -> None:
    """The test process killed with SIGKILL (no cleanup of its own runs): its dev stops."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    dev_pid = 0
    try:
        line = holder.stdout.readline()
        assert line.strip().isdigit(), f"no dev started: {line!r}"
        dev_pid = int(line)
        holder.kill()
        holder.wait(30)
        wait_gone(dev_pid, lambda: "the dev outlived the test process")
    finally:
        reap(holder, dev_pid)
        holder.stdout.close()
    assert not (tmp_path / "ready.json").exists()  # it stopped cleanly
    assert "has exited: stopping" in (tmp_path / "commsgw-dev.log").read_text()


@e2e
def test_run_commsgw_dev_that_cannot_start_says_why(tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "AZURE_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
           "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555"}  # fmt: skip
    with (
        pytest.raises(CommsgwDevError, match=r"exited \(2\) before it was ready") as err,
        run_commsgw_dev(tmp_path, env=env),
    ):
        pass
    assert "set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH" in str(err.value)


def test_commsgw_command_is_the_variable_then_path_then_beside_python(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert commsgw_command({"COMMSGW_COMMAND": f"{shlex.quote(sys.executable)} -m commsgw"}) == [
        sys.executable, "-m", "commsgw"
    ]  # fmt: skip
    on_path, venv = tmp_path / "bin", tmp_path / "venv"
    for folder in (on_path, venv):
        folder.mkdir()
        (folder / "commsgw").write_text("#!/bin/sh\n")
        (folder / "commsgw").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv / "python"))
    assert commsgw_command({"PATH": str(on_path)}) == [str(on_path / "commsgw")]
    assert commsgw_command({"PATH": str(tmp_path / "none")}) == [str(venv / "commsgw")]
    (venv / "commsgw").unlink()
    with pytest.raises(CommsgwDevError, match="COMMSGW_COMMAND"):
        commsgw_command({"PATH": str(tmp_path / "none")})
