"""The two Python distributions: the gateway (`commsgw`, the top-level pyproject.toml) ships no
emulator code, and the Graph emulator (`commsgw-emulator`, service/emulator/pyproject.toml)
ships the `commsgw.emulator` package and the `commsgw-emulator` command. Both wheels are built
from the tree and read file by file; the gateway's wheel is also run alone (without the
emulator) to see `commsgw dev` say what to install."""

from __future__ import annotations

import asyncio
import email.parser
import importlib.metadata
import os
import pathlib
import re
import ssl
import subprocess
import sys
import tomllib
import zipfile

import httpx
import pytest

import commsgw
from helpers.wheels import build_wheels

ROOT = pathlib.Path(__file__).resolve().parent.parent
EMULATOR_SRC = ROOT / "service" / "commsgw" / "emulator"
EMULATOR_PYPROJECT = ROOT / "service" / "emulator" / "pyproject.toml"
pytestmark = pytest.mark.e2e  # builds wheels, runs the commands

INSTALL_HINT = "pip install commsgw-emulator==0.1.0"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zipfile.ZipFile]:
    """Both wheels, built from the tree as the Dockerfile's builder builds them."""
    out = tmp_path_factory.mktemp("wheels")
    built = build_wheels([".", "./service/emulator"], out, cwd=ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    found = {p.name.split("-")[0]: zipfile.ZipFile(p) for p in out.glob("*.whl")}
    assert set(found) == {"commsgw", "commsgw_emulator"}, sorted(found)
    return found


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.parser.Parser().parsestr(wheel.read(name).decode())


def test_the_gateway_wheel_has_no_emulator_module(wheels: dict[str, zipfile.ZipFile]) -> None:
    names = wheels["commsgw"].namelist()
    assert "commsgw/server/_gateway.py" in names and "commsgw/cli/_serve.py" in names
    assert "commsgw/_graphmeta/graph-v1.0-calls.xml" in names  # the kernel the emulator uses
    emulator = [n for n in names if n.startswith("commsgw/emulator")]
    assert emulator == [], emulator
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    assert "emulator" not in wheels["commsgw"].read(entry_points).decode()


def test_the_emulator_wheel_is_the_emulator_package_and_its_command(
    wheels: dict[str, zipfile.ZipFile],
) -> None:
    wheel = wheels["commsgw_emulator"]
    names = set(wheel.namelist())
    code = {n for n in names if not n.startswith("commsgw_emulator-0.1.0.dist-info/")}
    assert all(n.startswith("commsgw/emulator/") for n in code), sorted(code)
    # Every module of the package and every file of its page (GET /_emulator/), nothing left out.
    sources = {
        f"commsgw/emulator/{p.relative_to(EMULATOR_SRC)}"
        for p in [*EMULATOR_SRC.rglob("*.py"), *(EMULATOR_SRC / "page").iterdir()]
    }
    assert sources <= code, sorted(sources - code)
    entry_points = wheel.read("commsgw_emulator-0.1.0.dist-info/entry_points.txt").decode()
    assert re.search(r"^commsgw-emulator = commsgw\.emulator\._cli:console$", entry_points, re.M)
    requires = _metadata(wheel).get_all("Requires-Dist") or []
    assert f"commsgw=={commsgw.__version__}" in requires  # the kernel: _config, _ids, _graphmeta


def _pins(pyproject: pathlib.Path) -> dict[str, str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return {re.split(r"[\[=]", d)[0].lower(): d for d in deps}


def test_the_emulator_pins_what_the_gateway_pins() -> None:
    """One environment holds both: a dependency they share has the one pin."""
    gateway, emulator = _pins(ROOT / "pyproject.toml"), _pins(EMULATOR_PYPROJECT)
    shared = set(gateway) & set(emulator)
    assert shared >= {"aiohttp", "cryptography", "httpx", "msgspec", "pyjwt"}
    assert {n: emulator[n] for n in shared} == {n: gateway[n] for n in shared}
    assert emulator["commsgw"] == f"commsgw=={commsgw.__version__}"


def test_the_installed_distributions_split_as_the_wheels() -> None:
    """What `make run` installs: both distributions, the command in the emulator's only."""
    emulator = importlib.metadata.distribution("commsgw-emulator")
    (console,) = [e for e in emulator.entry_points if e.group == "console_scripts"]
    assert (console.name, console.value) == ("commsgw-emulator", "commsgw.emulator._cli:console")
    gateway = importlib.metadata.distribution("commsgw")
    assert [e.name for e in gateway.entry_points if e.group == "console_scripts"] == ["commsgw"]


def _gateway_alone(wheels: dict[str, zipfile.ZipFile], where: pathlib.Path) -> dict[str, str]:
    """An environment with the gateway's wheel (unpacked: a pure wheel installs so) and its
    dependencies but not the emulator: `python -S` skips the site's .pth files (the editable
    installs of the clone), PYTHONPATH lists what is there."""
    wheels["commsgw"].extractall(where)
    site = [p for p in sys.path if p.endswith("site-packages")]
    path = [str(where), str(ROOT / "clients" / "python"), *site]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    return {**env, "PYTHONPATH": os.pathsep.join(path)}


@pytest.mark.parametrize("command", ["dev", "emulator"])
def test_without_the_emulator_the_commands_say_what_to_install(
    wheels: dict[str, zipfile.ZipFile], tmp_path: pathlib.Path, command: str
) -> None:
    env = _gateway_alone(wheels, tmp_path / "site")
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import commsgw.cli, commsgw.server; import commsgw.emulator"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert "No module named 'commsgw.emulator'" in probe.stderr, probe.stderr
    run = subprocess.run(
        [sys.executable, "-S", "-m", "commsgw", command],
        env={**env, "COMMSGW_STATE_DIR": str(tmp_path / "state")},
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stdout == ""
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"commsgw {command}: the Graph emulator is not installed"), line
    assert INSTALL_HINT in line and "make run" in line
    assert not (tmp_path / "state").exists()  # nothing started


async def test_the_emulator_command_starts_and_answers_health(tmp_path: pathlib.Path) -> None:
    script = pathlib.Path(sys.executable).parent / "commsgw-emulator"
    proc = await asyncio.create_subprocess_exec(
        str(script), "--port", "0", "--state-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        printed: dict[str, str] = {}
        async with asyncio.timeout(60):
            while "controls" not in printed:
                line = (await proc.stdout.readline()).decode()
                assert line, f"commsgw-emulator exited: {printed}"
                key, _, value = line.strip().partition("=")
                printed[key] = value
        assert printed["ca_path"] == str(tmp_path / "emulator-ca.pem")
        verify = ssl.create_default_context(cafile=printed["ca_path"])
        async with httpx.AsyncClient(verify=verify) as http:
            r = await http.get(f"{printed['base_url']}/_emulator/health")
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        await proc.wait()
    assert proc.returncode == 0  # SIGTERM: a clean stop


def test_the_emulator_command_names_itself() -> None:
    script = pathlib.Path(sys.executable).parent / "commsgw-emulator"
    run = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("usage: commsgw-emulator "), run.stdout
    assert "/_emulator/health" in run.stdout
