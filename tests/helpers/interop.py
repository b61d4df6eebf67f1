"""The other languages' interop examples (clients/node's examples/interop.ts, clients/go's
examples/interop), run as processes: one `Example` per language, so that a test written once
runs against each. The two take the same flags (Node's start with `--`, Go's with `-`) and print
one JSON line per answer, in shapes of their own; `Example` reads them into the same terms."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

Lines = list[dict[str, Any]]


async def run_json_lines(*argv: str, timeout: float = 20) -> tuple[int, Lines, str]:
    """Run a command; its exit code, its stdout's JSON lines and its stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(
            f"{argv[0]} timed out; stdout={out.decode()} stderr={err.decode()}"
        ) from None
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return proc.returncode or 0, lines, err.decode()


@dataclass(frozen=True)
class Example:
    """One language's example: the command that starts it and how its flags and lines read."""

    argv: tuple[str, ...]

    dash = "-"
    # The start of the one stderr line of an error, for DEADLINE_EXCEEDED, and how it writes
    # the error's reason.
    deadline_exceeded = ""
    not_done_reason = ""

    async def run(self, *flags: str, timeout: float = 20) -> tuple[int, Lines, str]:
        return await run_json_lines(*self.argv, *flags, timeout=timeout)

    def flag(self, name: str) -> str:
        return self.dash + name

    def wait_at_most(self, seconds: int) -> tuple[str, ...]:
        raise NotImplementedError

    def played(self, line: dict[str, Any]) -> dict[str, Any]:
        """The PlayPromptResponse of a `play` line."""
        raise NotImplementedError

    def waited(self, line: dict[str, Any]) -> dict[str, Any]:
        """The operation a `wait` ended with."""
        raise NotImplementedError

    def not_done(self, line: dict[str, Any]) -> dict[str, Any]:
        """The last operation a `wait` that ran out of time saw."""
        raise NotImplementedError

    def events(self, lines: Lines) -> Lines:
        """The event responses (WatchOperationsResponse with an event) of a watch's lines."""
        raise NotImplementedError


class NodeExample(Example):
    dash = "--"
    deadline_exceeded = "error: DEADLINE_EXCEEDED:"
    not_done_reason = "reason=OPERATION_NOT_DONE"

    def wait_at_most(self, seconds: int) -> tuple[str, ...]:
        return ("--wait-ms", str(seconds * 1000))

    def played(self, line: dict[str, Any]) -> dict[str, Any]:
        assert list(line) == ["play"], line
        return dict(line["play"])

    def waited(self, line: dict[str, Any]) -> dict[str, Any]:
        assert list(line) == ["operation"], line
        return dict(line["operation"])

    def not_done(self, line: dict[str, Any]) -> dict[str, Any]:
        assert list(line) == ["notDone"], line
        return dict(line["notDone"])

    def events(self, lines: Lines) -> Lines:
        return [x["response"] for x in lines if "event" in x.get("response", {})]


class GoExample(Example):
    dash = "-"
    deadline_exceeded = "error: DeadlineExceeded:"
    not_done_reason = "(reason=OPERATION_NOT_DONE)"

    def wait_at_most(self, seconds: int) -> tuple[str, ...]:
        return ("-wait-timeout", f"{seconds}s")

    def played(self, line: dict[str, Any]) -> dict[str, Any]:
        assert "operation" in line, line
        return line

    def waited(self, line: dict[str, Any]) -> dict[str, Any]:
        return line

    def not_done(self, line: dict[str, Any]) -> dict[str, Any]:
        return line

    def events(self, lines: Lines) -> Lines:
        return [x for x in lines if "event" in x]
