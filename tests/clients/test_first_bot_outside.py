"""The Python first bot as a bot team gets it, outside the repository: a fresh virtualenv in a
temporary directory, the client installed into it as a package with its testing extra (the
wheel of clients/python, `pip install 'commsgw_client-0.1.0-py3-none-any.whl[testing]'`, not an
editable install) and pytest, the example's two files copied next to it, and its test run there,
green.

What it checks: the package installs with its declared dependencies (nothing comes from this
repository's .venv or from the base interpreter's site-packages: the virtualenv does not see
them), the `pytest11` entry point makes the fixtures appear with no configuration, and
bot.py/test_bot.py need nothing but that. The gateway is a separate program, as for any bot
team: `COMMSGW_COMMAND` points the fixture at this repository's `commsgw`.

To keep the cost down the virtualenv is made without pip (`--without-pip`, saving ensurepip's
few seconds) and this environment's pip installs into it (`pip --python`); pip resolves and
installs the same as the virtualenv's own pip would, from its usual index and cache (the
dependencies, grpcio, protobuf, httpx, pytest, ..., come from there: pip needs its index
reachable, a warm cache only saves the downloads).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from helpers.wheels import build_wheels

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "clients/python/examples/first-bot"

pytestmark = pytest.mark.e2e


def _run(
    argv: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: pathlib.Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, env=env, cwd=cwd
    )


def test_the_first_bot_installs_and_passes_from_outside_the_repository(
    tmp_path: pathlib.Path,
) -> None:
    assert not tmp_path.resolve().is_relative_to(ROOT.resolve())
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    assert made.returncode == 0, made.stderr
    # the wheel of clients/python, built with this environment's setuptools (no download)
    wheels = tmp_path / "wheels"
    built = build_wheels([ROOT / "clients/python"], wheels, cwd=ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("commsgw_client-*.whl")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    installed = _run([*pip, f"{wheel}[testing]", f"pytest=={pytest.__version__}"], timeout=540)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    bot_dir = tmp_path / "first-bot"
    bot_dir.mkdir()
    for name in ("bot.py", "test_bot.py"):
        shutil.copy(EXAMPLE / name, bot_dir / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV"} and not k.startswith("PYTEST_")
    }
    env["COMMSGW_COMMAND"] = str(pathlib.Path(sys.executable).parent / "commsgw")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    where = _run(
        [str(python), "-c", "import commsgw_client.testing as t, httpx; print(t.__file__)"],
        timeout=60,
        env=env,
        cwd=bot_dir,
    )
    assert where.returncode == 0, where.stderr
    assert pathlib.Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    ran = _run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_bot.py"],
        timeout=300,
        env=env,
        cwd=bot_dir,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed" in ran.stdout, ran.stdout
