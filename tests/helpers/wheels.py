"""Wheels built from the tree without writing into it: setuptools' build/ and *.egg-info go to a
temporary folder (DIST_EXTRA_CONFIG), so a test that builds leaves no copy of the sources behind
for another test to find (a build/lib copy of the generated stubs, say)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Sequence


def build_wheels(
    projects: Sequence[str | os.PathLike[str]], out: pathlib.Path, *, cwd: pathlib.Path
) -> subprocess.CompletedProcess[str]:
    """`pip wheel --no-deps --no-build-isolation` of each of ``projects`` into ``out``, with
    this environment's setuptools (no download); each builds in a scratch folder of its own
    (a shared build/lib would put one project's files into the next one's wheel). The first
    failed build is returned, else the last."""
    done: subprocess.CompletedProcess[str] | None = None
    for project in projects:
        with tempfile.TemporaryDirectory(prefix="commsgw-build-") as scratch:
            cfg = pathlib.Path(scratch) / "setup.cfg"
            cfg.write_text(
                f"[build]\nbuild_base = {scratch}/build\n[egg_info]\negg_base = {scratch}\n"
            )
            done = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                 "--wheel-dir", str(out), str(project)],
                cwd=cwd, env={**os.environ, "DIST_EXTRA_CONFIG": str(cfg)},
                capture_output=True, text=True, timeout=240,
            )  # fmt: skip
        if done.returncode != 0:
            return done
    assert done is not None, "no project to build"
    return done
