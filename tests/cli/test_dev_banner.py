"""What `commsgw dev` prints to try it: the client commands with the flags its addresses need
(pure decisions; tests/cli/test_dev.py runs the printed commands)."""

from __future__ import annotations

import pathlib
import sys

import pytest

from commsgw.cli._serve import program, reachable, try_it

DEFAULTS = ("127.0.0.1:50051", "https://127.0.0.1:8443", "http://127.0.0.1:8080/api/calls")


def test_make_run_s_defaults_print_the_bare_commands() -> None:
    commands = dict(try_it(*DEFAULTS, pathlib.Path(".commsgw/emulator-ca.pem")))
    assert set(commands) == {"demo", "watch --calls", "--help"}


def test_each_address_that_differs_is_a_flag() -> None:
    ca = pathlib.Path("/tmp/s/emulator-ca.pem")
    commands = [c for c, _ in try_it("[::1]:5", "https://127.0.0.1:7", "http://h:6/x", ca)]
    assert commands[0] == (
        "demo --target '[::1]:5' --emulator https://127.0.0.1:7 --webhook http://h:6/x "
        "--emulator-ca /tmp/s/emulator-ca.pem"
    )
    assert commands[1] == "watch --calls --target '[::1]:5'"
    # Only the CA moved (another --state-dir): only --emulator-ca.
    only_ca = try_it(*DEFAULTS, ca)[0][0]
    assert only_ca == "demo --emulator-ca /tmp/s/emulator-ca.pem"


def test_a_wildcard_listen_address_is_dialled_on_loopback() -> None:
    assert reachable("0.0.0.0", 50051) == "127.0.0.1:50051"
    assert reachable("::", 1) == "[::1]:1"
    assert reachable("10.0.0.2", 2) == "10.0.0.2:2"
    assert reachable("fd00::1", 3) == "[fd00::1]:3"


def test_the_program_is_this_environment_s_commsgw(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_bin = pathlib.Path(sys.executable).parent
    assert (venv_bin / "commsgw").is_file()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # not on PATH: its path, relative when inside
    venv = venv_bin.parent
    assert program(sys.executable, cwd=venv.parent) == f"{venv.name}/{venv_bin.name}/commsgw"
    assert program(sys.executable, cwd=tmp_path) == str(venv_bin / "commsgw")
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")  # the one on PATH: its name
    assert program(sys.executable, cwd=tmp_path) == "commsgw"
    # A Python with no commsgw script beside it: run the module.
    fake = tmp_path / "bin" / "python3"
    assert program(str(fake), cwd=tmp_path) == f"{fake} -m commsgw"
