"""The Makefile's two install stamps, as `make -n` shows them: `make run` (and `make demo`)
install only what running needs (the gateway, its client library and the emulator, its own
distribution); lint, typecheck, test and gen install the dev and deploy extras, in one pip run
for them all, once per change of the pyproject files."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def dry_run(*targets: str, venv: pathlib.Path) -> str:
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), *targets, f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("target", ["run", "demo", "emulator"])
def test_running_installs_no_dev_tools(tmp_path: pathlib.Path, target: str) -> None:
    commands = dry_run(target, venv=tmp_path / "venv")
    assert "-m pip install -q -e clients/python -e . -e service/emulator\n" in commands, commands
    assert ".[dev]" not in commands and "[dev]" not in commands
    assert f"touch {tmp_path / 'venv'}/.installed-run" in commands


DEV_INSTALL = "-m pip install -q -e clients/python -e '.[dev,deploy]' -e service/emulator\n"


@pytest.mark.parametrize("targets", [["test"], ["lint"], ["typecheck"], ["gen"]])
def test_development_targets_install_the_dev_and_deploy_extras(
    tmp_path: pathlib.Path, targets: list[str]
) -> None:
    commands = dry_run(*targets, venv=tmp_path / "venv")
    assert commands.count(DEV_INSTALL) == 1, commands
    assert commands.count("pip install") == 1, commands
    venv = tmp_path / "venv"
    assert f"touch {venv}/.installed-dev {venv}/.installed-run" in commands


def test_lint_typecheck_and_test_install_the_project_once(tmp_path: pathlib.Path) -> None:
    commands = dry_run("lint", "typecheck", "test", venv=tmp_path / "venv")
    assert commands.count("pip install") == 1, commands
    assert commands.count(DEV_INSTALL) == 1, commands


def _stamped(tmp_path: pathlib.Path) -> pathlib.Path:
    """A venv folder whose stamps are newer than the pyproject files (as after an install)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in (".installed-run", ".installed-dev"):
        (venv / name).touch()
    return venv


@pytest.mark.parametrize("target", ["lint", "typecheck", "test", "run"])
def test_an_installed_venv_is_not_installed_again(tmp_path: pathlib.Path, target: str) -> None:
    commands = dry_run(target, venv=_stamped(tmp_path))
    assert "pip install" not in commands, commands
