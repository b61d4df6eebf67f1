"""py-spy on a running server: `python -m bench._profile PID SECONDS OUT` records collapsed
stacks (non-blocking sampling, so the server is not paused); `top_functions` reads them."""

from __future__ import annotations

import collections
import pathlib
import shutil
import subprocess
import sys


def record(pid: int, seconds: float, out: pathlib.Path) -> None:
    exe = shutil.which("py-spy") or str(pathlib.Path(sys.executable).parent / "py-spy")
    subprocess.run(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "250",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=seconds + 30,
    )


# Frames every sample of a thread passes through (the interpreter's, the loop's, the thread's).
_WRAPPERS = frozenset(
    {
        "<module>",
        "run",
        "run_forever",
        "_run_once",
        "run_until_complete",
        "main",
        "_run",
        "serve",
        "_run_module_as_main",
        "_run_code",
        "Runner.run",
        "Thread._bootstrap",
        "Thread._bootstrap_inner",
        "Thread.run",
        "Handle._run",
    }
)


def top_self(path: pathlib.Path, n: int = 15) -> list[tuple[str, float]]:
    """The frames where samples landed (self time, %), busiest first."""
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        leaf[stack.split(";")[-1]] += int(count)
    return [(k, v * 100 / total) for k, v in leaf.most_common(n)] if total else []


def top_functions(path: pathlib.Path, n: int = 12) -> list[tuple[str, float]]:
    """The functions where most samples were (inclusive share, %), busiest first, leaving out
    the event loop's own frames; plus the idle share as `(idle)`."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        if "select (selectors.py" in frames[-1] or "_run_once" in frames[-1]:
            idle += c
        seen: set[str] = set()
        for f in frames:
            name = f.split(" (")[0]
            where = f.split("(")[-1].split(":")[0] if "(" in f else ""
            key = f"{name} ({where})"
            if key in seen or name in _WRAPPERS:
                continue
            seen.add(key)
            inclusive[key] += c
    if not total:
        return []
    out = [(k, v * 100 / total) for k, v in inclusive.most_common(n)]
    out.append(("(idle in select)", idle * 100 / total))
    return out


if __name__ == "__main__":
    record(int(sys.argv[1]), float(sys.argv[2]), pathlib.Path(sys.argv[3]))
