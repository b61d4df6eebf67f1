"""`python -m bench --ab REV`: the gateway of git revision REV, checked out into a temporary
`git worktree`, measured against the working tree's gateway in the same run."""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
from collections.abc import Iterator

from bench._ctx import Ab
from bench._procs import ROOT


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@contextlib.contextmanager
def worktree(rev: str, workdir: pathlib.Path) -> Iterator[Ab]:
    """REV checked out (detached) under `workdir`; the worktree is removed afterwards."""
    try:
        sha = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"--ab {rev}: not a revision of this repository") from None
    path = workdir / f"ab-{sha[:12]}"
    _git("worktree", "add", "--detach", "--quiet", str(path), sha)
    try:
        if not (path / "service" / "commsgw").is_dir():
            raise SystemExit(f"--ab {rev}: no service/commsgw in that revision")
        yield Ab(rev, sha, path)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _git("worktree", "remove", "--force", str(path))
