"""A dev started with --exit-with-parent, whose parent is killed: whether it has exited, waiting
for that, and the cleanup of both whatever the test's outcome."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time
from collections.abc import Callable


def gone(pid: int) -> bool:
    """The process has exited (a zombie not reaped yet counts: it runs no more)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_gone(pid: int, what: Callable[[], str], timeout_s: float = 30.0) -> None:
    """Until ``pid`` has exited; past ``timeout_s`` the test fails with ``what()``."""
    deadline = time.monotonic() + timeout_s
    while not gone(pid):
        assert time.monotonic() < deadline, what()
        time.sleep(0.02)  # polling /proc: the condition, checked every 20 ms


def reap(parent: subprocess.Popen[str] | subprocess.Popen[bytes], dev_pid: int) -> None:
    """The parent and the dev both stopped, however the test went."""
    if parent.poll() is None:
        parent.kill()
        parent.wait()
    if dev_pid and not gone(dev_pid):
        os.kill(dev_pid, signal.SIGKILL)
