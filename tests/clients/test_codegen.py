"""The committed stubs are exactly what `make gen` produces from protos/."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "clients" / "python"


def _generated(root: pathlib.Path) -> dict[pathlib.Path, bytes]:
    return {
        p.relative_to(root): p.read_bytes()
        for p in root.rglob("*_pb2*")
        if p.suffix in (".py", ".pyi") and "__pycache__" not in p.parts
    }


def test_generated_python_matches_protos(tmp_path: pathlib.Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_python.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = _generated(tmp_path)
    committed = _generated(COMMITTED)
    assert fresh, "the generator wrote nothing"
    assert sorted(fresh) == sorted(committed), "generated file set differs: run `make gen`"
    stale = [str(name) for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated files (run `make gen` and commit): {stale}"
