"""The `commsgw` command as a process: run one command and collect its output, or keep a
`commsgw dev` (emulator and gateway, what `make run` starts) running on free ports."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

from commsgw.testing import free_port


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


async def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = 60,
    cwd: str | os.PathLike[str] | None = None,
    base_env: Mapping[str, str] | None = None,
) -> Result:
    """`python -m commsgw ARGS` to its end; `env` is added to `base_env` (by default this
    process's environment)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "commsgw", *args,
        env={**(os.environ if base_env is None else base_env), **(env or {})}, cwd=cwd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Result(proc.returncode or 0, out.decode(), err.decode())


def client_env() -> dict[str, str]:
    """This process's environment without a single COMMSGW_ variable (what a newcomer's shell
    has): what a printed command needs must be in it."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COMMSGW_")}


async def run_demo(*args: str, cwd: pathlib.Path, timeout: float = 60, **env: str) -> Result:
    """`commsgw demo ARGS` to its end, in `client_env()` plus `env`."""
    return await run_cli("demo", *args, env=env, base_env=client_env(), cwd=cwd, timeout=timeout)


class DevProcess:
    """`commsgw dev` on free loopback ports, its state in `tmp_path`, its logs (stderr) in
    `tmp_path/dev.log`; started when entered (once its banner is printed), stopped with SIGINT
    when left."""

    BANNER_END = b"Ctrl-C stops both"

    def __init__(self, tmp_path: pathlib.Path, *args: str, **env: str) -> None:
        self.grpc_port, self.http_port, self.emulator_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "COMMSGW_GRPC_ADDR": f"127.0.0.1:{self.grpc_port}",
            "COMMSGW_HTTP_ADDR": f"127.0.0.1:{self.http_port}",
            "COMMSGW_STATE_DIR": str(tmp_path / "state"),
            "COMMSGW_EMULATOR_URL": f"https://127.0.0.1:{self.emulator_port}",
            **env,
        }
        self.args = args
        self.log_path = tmp_path / "dev.log"
        self.banner = ""
        self.returncode: int | None = None
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def __aenter__(self) -> DevProcess:
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "commsgw", "dev", *self.args,
                env=self.env, stdout=asyncio.subprocess.PIPE, stderr=log,
            )  # fmt: skip
        assert self._proc.stdout is not None
        banner = b""
        async with asyncio.timeout(60):
            while self.BANNER_END not in banner:
                line = await self._proc.stdout.readline()
                assert line, f"commsgw dev exited: {banner.decode()} {self.logs()}"
                banner += line
        self.banner = banner.decode()
        return self

    async def stop(self) -> int:
        proc = self._proc
        assert proc is not None
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.returncode = proc.returncode
        return proc.returncode or 0

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
