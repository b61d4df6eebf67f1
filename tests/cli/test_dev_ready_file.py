"""`commsgw dev --ready-file PATH`: once both servers serve, one JSON object naming where they
are (ports chosen with 0 resolved), written atomically and removed on a clean stop; and
`--exit-with-parent`: a dev whose parent dies stops. The pure parts (what the file holds, how it
is written, where from, when the parent is gone), then real processes: a dev on port 0
everywhere whose every ready-file field is used, and a dev whose parent is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from commsgw._errors import ConfigError
from commsgw.cli._serve import (
    EXIT_WITH_PARENT_VARIABLE,
    READY_FILE_VARIABLE,
    exits_with_parent,
    orphaned,
    ready_file_path,
    ready_record,
    remove_ready_file,
    until_orphaned,
    write_ready_file,
)
from commsgw_client.testing import EmulatorClient
from helpers.orphans import gone, reap, wait_gone

FIELDS = {"target", "webhookUrl", "emulatorUrl", "emulatorCaFile", "pid"}

# --- the pure part ------------------------------------------------------------------------------


def test_the_record_names_every_address_and_the_ca_as_an_absolute_path() -> None:
    record = ready_record(
        "127.0.0.1:5", "http://127.0.0.1:6/api/calls", "https://127.0.0.1:7",
        pathlib.Path("state/emulator-ca.pem"), 42,
    )  # fmt: skip
    assert record == {
        "target": "127.0.0.1:5",
        "webhookUrl": "http://127.0.0.1:6/api/calls",
        "emulatorUrl": "https://127.0.0.1:7",
        "emulatorCaFile": str(pathlib.Path.cwd() / "state" / "emulator-ca.pem"),
        "pid": 42,
    }


def test_the_file_is_replaced_by_a_rename_not_rewritten_in_place(tmp_path: pathlib.Path) -> None:
    """A reader that opened the old file still reads all of the old one; the path holds all of the
    new one; no temporary file is left."""
    path = tmp_path / "ready.json"
    write_ready_file(path, {"pid": 1})
    with path.open() as old:
        write_ready_file(path, {"pid": 2, "target": "x"})
        assert json.load(old) == {"pid": 1}
    assert json.loads(path.read_text()) == {"pid": 2, "target": "x"}
    assert path.read_text().count("\n") == 1  # one JSON object, one line
    assert [p.name for p in tmp_path.iterdir()] == ["ready.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_no_temporary_file(tmp_path: pathlib.Path) -> None:
    taken = tmp_path / "ready.json"
    (taken / "inside").mkdir(parents=True)  # a folder with something in it: no rename over it
    with pytest.raises(OSError):
        write_ready_file(taken, {"pid": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready.json"]
    assert taken.is_dir()


def test_removing_a_ready_file_that_is_gone_is_no_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ready.json"
    write_ready_file(path, {"pid": 1})
    remove_ready_file(path)
    assert not path.exists()
    remove_ready_file(path)


def test_the_ready_file_is_the_flag_else_the_variable(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {READY_FILE_VARIABLE: str(tmp_path / "from-env.json")}
    assert ready_file_path("r.json", env) == tmp_path / "r.json"  # the flag wins, absolute
    assert ready_file_path(None, env) == tmp_path / "from-env.json"
    assert ready_file_path(None, {}) is None
    assert ready_file_path(None, {READY_FILE_VARIABLE: " "}) is None


@pytest.mark.parametrize(
    ("flag", "env", "message"),
    [
        ("", {}, "--ready-file: empty path"),
        ("{tmp}/no/r.json", {}, "--ready-file={tmp}/no/r.json: no folder {tmp}/no to write it in"),
        (None, {READY_FILE_VARIABLE: "{tmp}"}, f"${READY_FILE_VARIABLE}={{tmp}}: is a folder"),
    ],
)
def test_a_ready_file_that_cannot_be_written_is_refused_naming_its_source(
    tmp_path: pathlib.Path, flag: str | None, env: dict[str, str], message: str
) -> None:
    given = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    with pytest.raises(ConfigError) as err:
        ready_file_path(None if flag is None else flag.format(tmp=tmp_path), given)
    assert str(err.value).startswith(message.format(tmp=tmp_path)), err.value


def test_exit_with_parent_is_the_flag_else_the_variable() -> None:
    assert exits_with_parent(True, {EXIT_WITH_PARENT_VARIABLE: "false"}) is True
    assert exits_with_parent(None, {EXIT_WITH_PARENT_VARIABLE: "1"}) is True
    assert exits_with_parent(None, {EXIT_WITH_PARENT_VARIABLE: "off"}) is False
    assert exits_with_parent(None, {}) is False
    with pytest.raises(ConfigError, match=rf"^\${EXIT_WITH_PARENT_VARIABLE}=maybe: expected"):
        exits_with_parent(None, {EXIT_WITH_PARENT_VARIABLE: "maybe"})


def test_the_parent_is_gone_when_getppid_names_another_process() -> None:
    assert not orphaned(1234, 1234)
    assert orphaned(1234, 1)  # re-parented to init
    assert orphaned(1234, 77)  # or to a subreaper


async def test_without_pidfds_until_orphaned_returns_once_getppid_changes() -> None:
    seen = iter([10, 10, 10, 1])
    calls: list[int] = []

    def getppid() -> int:
        calls.append(1)
        return next(seen)

    await until_orphaned(10, getppid=getppid, interval=0, pidfd_open=None)
    assert len(calls) == 4


async def test_until_orphaned_waits_for_the_parent_s_pidfd(tmp_path: pathlib.Path) -> None:
    """A real process as the "parent": until_orphaned returns once it has exited."""
    if not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open")
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    waiting = asyncio.ensure_future(until_orphaned(child.pid, getppid=lambda: child.pid))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert child.stdin is not None
    child.stdin.close()  # it exits
    await asyncio.wait_for(waiting, 30)
    child.wait()


# --- real processes -----------------------------------------------------------------------------

DEV = [sys.executable, "-m", "commsgw", "dev", "--emulator-port", "0", "--grpc-addr",
       "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--webhook-drain-s", "0"]  # fmt: skip


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("COMMSGW_")}


def _log_tail(log: pathlib.Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:])


def wait_for_ready_file(
    path: pathlib.Path, process: subprocess.Popen[bytes], log: pathlib.Path, timeout: float = 60
) -> dict[str, object]:
    """The ready file once it exists; fails with the log's end when `process` exits first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        code = process.poll()
        assert code is None, f"exited ({code}) before it was ready:\n{_log_tail(log)}"
        assert time.monotonic() < deadline, f"no ready file in {timeout} s:\n{_log_tail(log)}"
        time.sleep(0.02)
    record: dict[str, object] = json.loads(path.read_text())
    return record


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@pytest.mark.e2e
def test_every_field_of_the_ready_file_reaches_what_it_names(tmp_path: pathlib.Path) -> None:
    dev_log = tmp_path / "dev.log"
    ready = tmp_path / "ready.json"
    with dev_log.open("ab") as log:
        proc = subprocess.Popen(
            [*DEV, "--state-dir", str(tmp_path / "state"), "--ready-file", str(ready)],
            env=_env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        record = wait_for_ready_file(ready, proc, dev_log)
        assert set(record) == FIELDS, record
        assert record["pid"] == proc.pid
        target, webhook, url, ca = (
            str(record[k]) for k in ("target", "webhookUrl", "emulatorUrl", "emulatorCaFile")
        )
        assert ca == str(tmp_path / "state" / "emulator-ca.pem")
        for address in (target, webhook.removesuffix("/api/calls"), url):
            assert int(address.rsplit(":", 1)[1]) > 0, record  # the real port, not 0

        with grpc.insecure_channel(target) as channel:  # the gateway's gRPC health
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="graphcomms.v1.CallsService"), timeout=10
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        with EmulatorClient(url, ca_file=ca, callback_uri=webhook) as emulator:
            assert emulator.health().base_url == url  # verified against the CA named
            call_id = emulator.ring(caller="+14255550100")  # calls back to the webhook named
            deadline = time.monotonic() + 30
            while not (deliveries := emulator.deliveries(call_id=call_id)):
                assert time.monotonic() < deadline, "the emulator delivered nothing"
                time.sleep(0.02)
        assert [(d.url, d.status) for d in deliveries[:1]] == [(webhook, 202)], deliveries
    finally:
        code = _stop(proc)
    assert code == 0, _log_tail(dev_log)
    assert not ready.exists(), "a clean stop removes the ready file"


def test_dev_help_names_both_options_and_their_variables() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "commsgw", "dev", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    for flag, variable in (
        ("--ready-file PATH", READY_FILE_VARIABLE),
        ("--exit-with-parent", EXIT_WITH_PARENT_VARIABLE),
    ):
        option = " ".join(text.split(f"\n  {flag}", 1)[1].split("\n  --", 1)[0].split())
        assert f"env {variable})" in option, (flag, option)
    assert all(f'"{field}"' in " ".join(text.split()) for field in FIELDS), text


@pytest.mark.e2e
def test_a_bad_ready_file_stops_dev_before_it_starts(tmp_path: pathlib.Path) -> None:
    where = tmp_path / "none" / "ready.json"
    proc = subprocess.run(
        [*DEV, "--state-dir", str(tmp_path / "state"), "--ready-file", str(where)],
        env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"no folder {where.parent} to write it in" in proc.stderr
    assert not (tmp_path / "state").exists()  # nothing started


PARENT = """
import signal, subprocess, sys
subprocess.Popen(sys.argv[1:], stdout=open({log!r}, "ab"), stderr=subprocess.STDOUT)
signal.pause()
"""


@pytest.mark.e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--exit-with-parent is Linux's")
def test_a_dev_whose_parent_is_killed_stops_and_removes_its_ready_file(
    tmp_path: pathlib.Path,
) -> None:
    dev_log = tmp_path / "dev.log"
    ready = tmp_path / "ready.json"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(log=str(dev_log)), *DEV,
         "--state-dir", str(tmp_path / "state"), "--ready-file", str(ready),
         "--exit-with-parent"],
        env=_env(),
    )  # fmt: skip
    dev_pid = 0
    try:
        dev_log.touch()
        record = wait_for_ready_file(ready, parent, dev_log)
        dev_pid = int(str(record["pid"]))
        assert not gone(dev_pid)
        parent.send_signal(signal.SIGKILL)
        assert parent.wait(30) == -signal.SIGKILL
        wait_gone(dev_pid, lambda: f"dev outlived its parent:\n{_log_tail(dev_log)}")
    finally:
        reap(parent, dev_pid)
    assert not ready.exists(), "it stopped cleanly: the ready file is removed"
    text = dev_log.read_text()
    assert f"its parent process {parent.pid} has exited: stopping" in text, text
    assert "commsgw.server: stopped" in text, _log_tail(dev_log)
