"""The Makefile's two install stamps, as `make -n` shows them: `make run` (and `make demo`)
install only what running needs (the gateway, its client library and the emulator, its own
distribution); the test, lint, typecheck and gen targets add the dev extra."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def dry_run(target: str, venv: pathlib.Path) -> str:
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("target", ["run", "demo", "emulator"])
def test_running_installs_no_dev_tools(tmp_path: pathlib.Path, target: str) -> None:
    commands = dry_run(target, tmp_path / "venv")
    assert "-m pip install -q -e clients/python -e . -e service/emulator\n" in commands, commands
    assert ".[dev]" not in commands and "[dev]" not in commands
    assert f"touch {tmp_path / 'venv'}/.installed-run" in commands


@pytest.mark.parametrize("target", ["test", "lint", "typecheck", "gen"])
def test_development_targets_add_the_dev_extra(tmp_path: pathlib.Path, target: str) -> None:
    commands = dry_run(target, tmp_path / "venv")
    run_install = commands.index("-m pip install -q -e clients/python -e . -e service/emulator\n")
    assert commands.index("-m pip install -q -e '.[dev]'") > run_install, commands
    assert f"touch {tmp_path / 'venv'}/.installed-dev" in commands
