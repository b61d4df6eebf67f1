"""`commsgw serve` (the gateway), `commsgw dev` (the emulator and the gateway in one process,
what `make run` does) and `commsgw hash-token`.

Both servers build their Settings the same way (flag, else environment, else default; dev
defaults to text logs) and check that every address they listen on is free before anything
starts, so that an address in use is one line naming it (exit 2), not a traceback or gRPC's
own log line.

`commsgw dev --ready-file PATH` is the machine-readable side of its banner: once both servers
serve, one JSON object with the addresses they bound (port 0 resolved), written atomically and
removed on a clean stop; `--exit-with-parent` stops it when the process that started it dies
(the testing helpers pass both).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib
import json
import logging
import os
import pathlib
import shlex
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from commsgw import _config, _logging, _tracing
from commsgw._errors import CommsgwError, ConfigError
from commsgw.cli import _demo
from commsgw.cli._client import DEFAULT_TARGET, Subparsers, subcommand

log = logging.getLogger("commsgw.cli")

# `commsgw dev` is for a person at a terminal: text logs unless asked otherwise.
DEV_DEFAULTS = {"log_format": "text"}


class CannotListen(ConfigError):
    """An address a server should listen on is taken (or cannot be bound)."""


class EmulatorMissing(CommsgwError):
    """The Graph emulator (its own distribution, commsgw-emulator) is not installed."""


EMULATOR_DISTRIBUTION = "commsgw-emulator"


def load_emulator() -> ModuleType:
    """The emulator's package (``commsgw.emulator``), which the gateway's distribution does not
    ship: the commsgw-emulator distribution does. Raises EmulatorMissing saying what to install."""
    from commsgw import __version__

    try:
        return importlib.import_module("commsgw.emulator")
    except ModuleNotFoundError as exc:
        if exc.name not in ("commsgw.emulator", None):
            raise
        raise EmulatorMissing(
            f"the Graph emulator is not installed: it is its own distribution, "
            f"{EMULATOR_DISTRIBUTION} (the gateway's has none of it). Install it: "
            f"pip install {EMULATOR_DISTRIBUTION}=={__version__}; in a clone of the "
            f"repository `make run` does (pip install -e service/emulator)"
        ) from None


def check_can_listen(host: str, port: int, setting: str) -> None:
    """Raise CannotListen naming the address (and its setting) when it cannot be bound."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise CannotListen(f"cannot listen on {host}:{port} ({setting}): {exc}") from None
    problem: OSError | None = None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
                return  # the server binds what it can of what the name resolves to
            except OSError as exc:
                problem = exc
    assert problem is not None
    why = "address already in use" if problem.errno == errno.EADDRINUSE else problem.strerror
    raise CannotListen(f"cannot listen on {host}:{port} ({setting}): {why or problem}")


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop the gateway runs on: uvloop unless asyncio's own is asked for."""
    if name == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


def _run_server(
    settings: _config.Settings,
    environ: Mapping[str, str],
    server: Callable[[_tracing.Tracing], object],
) -> int:
    """Set up logging and tracing as the settings say and run `server` until it stops."""
    _logging.setup(settings.log_level, settings.log_format)
    log.debug("settings %r", settings)
    tracing = _tracing.from_environment(environ)
    try:
        with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
            runner.run(server(tracing))  # type: ignore[arg-type]
    finally:
        tracing.shutdown()  # flush the spans not exported yet
    return 0


def serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from commsgw.server import serve as serve_gateway

    settings = _config.from_sources(environ, args)
    check_can_listen(settings.grpc_addr.host, settings.grpc_addr.port, "COMMSGW_GRPC_ADDR")
    check_can_listen(settings.http_addr.host, settings.http_addr.port, "COMMSGW_HTTP_ADDR")
    return _run_server(settings, environ, lambda tracing: serve_gateway(settings, tracing))


def _emulator_address(settings: _config.Settings, args: argparse.Namespace) -> tuple[str, int]:
    url = urlsplit(settings.emulator_url)
    port = args.emulator_port if args.emulator_port is not None else (url.port or 443)
    return url.hostname or "127.0.0.1", port


READY_FILE_VARIABLE = "COMMSGW_DEV_READY_FILE"
EXIT_WITH_PARENT_VARIABLE = "COMMSGW_DEV_EXIT_WITH_PARENT"
PARENT_POLL_S = 0.2  # without pidfds, how often --exit-with-parent looks at getppid()
_PIDFD_OPEN: Callable[[int], int] | None = getattr(os, "pidfd_open", None)  # Linux only


def ready_file_path(flag: str | None, environ: Mapping[str, str]) -> pathlib.Path | None:
    """Where `commsgw dev` says it is ready: --ready-file, else $COMMSGW_DEV_READY_FILE (an empty
    one: nowhere), as an absolute path whose folder exists. ConfigError naming the source."""
    source = "--ready-file" if flag is not None else f"${READY_FILE_VARIABLE}"
    raw = flag if flag is not None else environ.get(READY_FILE_VARIABLE, "")
    if not raw.strip():
        if flag is not None:
            raise ConfigError("--ready-file: empty path")
        return None
    path = pathlib.Path(raw).expanduser().absolute()
    if path.is_dir():
        raise ConfigError(f"{source}={raw}: is a folder; give the path of a file to write")
    if not path.parent.is_dir():
        raise ConfigError(f"{source}={raw}: no folder {path.parent} to write it in")
    return path


def exits_with_parent(flag: bool | None, environ: Mapping[str, str]) -> bool:
    """--exit-with-parent, else $COMMSGW_DEV_EXIT_WITH_PARENT (true/false, 1/0, yes/no, on/off)."""
    if flag is not None:
        return flag
    raw = environ.get(EXIT_WITH_PARENT_VARIABLE, "")
    try:
        return _config.parse_bool(raw)
    except ValueError:
        raise ConfigError(f"${EXIT_WITH_PARENT_VARIABLE}={raw}: expected true or false") from None


def ready_record(
    target: str, webhook_url: str, emulator_url: str, emulator_ca: pathlib.Path, pid: int
) -> dict[str, Any]:
    """What the ready file holds: where the gateway (gRPC), its webhook and the emulator (with
    its CA, an absolute path) are, and the process to signal."""
    return {
        "target": target,
        "webhookUrl": webhook_url,
        "emulatorUrl": emulator_url,
        "emulatorCaFile": str(emulator_ca.absolute()),
        "pid": pid,
    }


def write_ready_file(path: pathlib.Path, record: Mapping[str, Any]) -> None:
    """Write `record` as one JSON object atomically: a temporary file in the same folder, renamed
    over `path`, so that a reader sees no file or all of it."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # readable as any file written here (mkstemp's is 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove_ready_file(path: pathlib.Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def orphaned(parent: int, current: int) -> bool:
    """The parent `commsgw dev` started under has died: it was re-parented (to init, or to a
    subreaper), so getppid() no longer names the process it had at start."""
    return current != parent


async def until_orphaned(
    parent: int,
    getppid: Callable[[], int] = os.getppid,
    interval: float = PARENT_POLL_S,
    pidfd_open: Callable[[int], int] | None = _PIDFD_OPEN,
) -> None:
    """Return once `parent` has exited: when its pidfd (Linux 5.3+) turns readable, on the event
    loop, else when getppid() no longer names it (looked at every `interval` seconds)."""
    fd = None
    if pidfd_open is not None:
        with contextlib.suppress(OSError):  # gone already, or a kernel without pidfds
            fd = pidfd_open(parent)
    if fd is not None:
        try:
            if orphaned(parent, getppid()):  # it died (its pid taken again) before the open
                return
            exited = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(fd, exited.set)
            try:
                await exited.wait()
            finally:
                loop.remove_reader(fd)
        finally:
            os.close(fd)
        return
    while not orphaned(parent, getppid()):  # noqa: ASYNC110 - nothing to wait on but a syscall
        await asyncio.sleep(interval)


def dev(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    parent = os.getppid()  # first: a parent that dies after this is seen
    ready_file = ready_file_path(args.ready_file, environ)
    watch_parent = exits_with_parent(args.exit_with_parent, environ)
    if watch_parent and not sys.platform.startswith("linux"):
        raise ConfigError("--exit-with-parent is for Linux only")
    settings = _config.from_sources(environ, args, defaults=DEV_DEFAULTS)
    if not settings.emulator_mode:
        raise ConfigError(
            "commsgw dev runs the gateway on the emulator: unset AZURE_TENANT_ID and "
            "AZURE_CLIENT_ID, or run `commsgw serve` against Graph"
        )
    load_emulator()  # before anything starts: say what to install
    host, port = _emulator_address(settings, args)
    check_can_listen(host, port, "COMMSGW_EMULATOR_URL / --emulator-port")
    check_can_listen(settings.grpc_addr.host, settings.grpc_addr.port, "COMMSGW_GRPC_ADDR")
    check_can_listen(settings.http_addr.host, settings.http_addr.port, "COMMSGW_HTTP_ADDR")
    if ready_file is not None:
        remove_ready_file(ready_file)  # a stale one (an earlier run killed) is not this one
    return _run_server(
        settings,
        environ,
        lambda tracing: _dev(
            settings, args, environ, tracing, ready_file, parent if watch_parent else None
        ),
    )


async def _dev(
    settings: _config.Settings,
    args: argparse.Namespace,
    environ: Mapping[str, str],
    tracing: _tracing.Tracing,
    ready_file: pathlib.Path | None = None,
    parent: int | None = None,
) -> None:
    from commsgw.emulator import Emulator, EmulatorConfig  # dev() checked that it is installed
    from commsgw.server import Gateway, until_stopped

    host, port = _emulator_address(settings, args)
    emulator = Emulator(
        EmulatorConfig(
            host=host,
            port=port,
            state_dir=settings.state_dir,
            media_op_seconds=settings.media_op_seconds,
            ring_s=settings.ring_seconds,
            answer_window_s=settings.answer_window_seconds,
            establish_delay_s=settings.establish_delay_seconds,
            notification_delay=settings.notification_delay_seconds,
        )
    )
    try:
        await emulator.start()
    except OSError as exc:
        raise CannotListen(
            f"cannot listen on {host}:{port} (COMMSGW_EMULATOR_URL / --emulator-port): "
            f"{exc.strerror or exc}"
        ) from None
    if emulator.base_url != settings.emulator_url:  # --emulator-port chose another port
        settings = _config.from_sources(
            environ, args, defaults=DEV_DEFAULTS, overrides={"emulator_url": emulator.base_url}
        )
    gateway = Gateway(settings, tracing)
    try:
        await gateway.start()
    except BaseException:
        await emulator.stop()
        raise
    grpc_target = reachable(settings.grpc_addr.host, gateway.grpc_port)
    webhook = gateway.public_webhook_url  # the real port, bound at start
    prog = program()
    commands = try_it(grpc_target, emulator.base_url, webhook, emulator.ca_path)
    print(banner(emulator.base_url, grpc_target, webhook, commands, prog), flush=True)
    try:
        if ready_file is not None:
            record = ready_record(
                grpc_target, webhook, emulator.base_url, emulator.ca_path, os.getpid()
            )
            await asyncio.to_thread(write_ready_file, ready_file, record)
        await _until_stopped(until_stopped, parent)
    finally:
        if ready_file is not None:
            remove_ready_file(ready_file)  # first: no reader takes a stopping dev for ready
    await gateway.shutdown()
    await emulator.stop()


async def _until_stopped(stopped: Callable[[], Any], parent: int | None) -> None:
    """Until SIGINT or SIGTERM, or (with a parent to watch) until the parent has died."""
    signalled = asyncio.ensure_future(stopped())
    if parent is None:
        await signalled
        return
    parent_died = asyncio.ensure_future(until_orphaned(parent))
    done, pending = await asyncio.wait(
        {signalled, parent_died}, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    if parent_died in done:
        log.warning("commsgw dev: its parent process %d has exited: stopping", parent)


def reachable(host: str, port: int) -> str:
    """HOST:PORT as a client on this machine dials a server listening there (a wildcard host as
    loopback, an IPv6 one in brackets)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def program(executable: str = sys.executable, cwd: pathlib.Path | None = None) -> str:
    """How to run this `commsgw` from a shell: `commsgw` when that is the one on PATH, else the
    script next to this Python (relative to `cwd` when inside it), else `python -m commsgw`."""
    script = pathlib.Path(executable).parent / "commsgw"
    if not script.is_file():
        return f"{shlex.quote(executable)} -m commsgw"
    on_path = shutil.which("commsgw")
    if on_path and os.path.samefile(on_path, script):
        return "commsgw"
    here = (cwd or pathlib.Path.cwd()).resolve()
    if script.absolute().is_relative_to(here):
        return shlex.quote(str(script.absolute().relative_to(here)))
    return shlex.quote(str(script.absolute()))


def try_it(
    target: str, emulator: str, webhook: str, emulator_ca: pathlib.Path
) -> list[tuple[str, str]]:
    """The client commands `commsgw dev` prints, each with what it does: the demo and the watch
    with the flags that differ from their defaults (where this gateway and emulator are)."""
    flags = [] if target == DEFAULT_TARGET else ["--target", target]
    demo = list(flags)
    if emulator != _demo.DEFAULT_EMULATOR:
        demo += ["--emulator", emulator]
    if webhook != _demo.DEFAULT_WEBHOOK:
        demo += ["--webhook", webhook]
    default_ca = _demo.emulator_ca(_config.DEFAULT_STATE_DIR)
    if emulator_ca.absolute() != default_ca.absolute():
        demo += ["--emulator-ca", str(emulator_ca.absolute())]
    return [
        (shlex.join(["demo", *demo]), "the IVR story end to end"),
        (shlex.join(["watch", "--calls", *flags]), "stream every call and operation update"),
        ("--help", "a command per RPC"),
    ]


def banner(
    emulator: str, target: str, webhook: str, commands: list[tuple[str, str]], prog: str
) -> str:
    lines = [f"  {prog} {command}" for command, _ in commands]
    width = min(max(len(line) for line in lines), 46)  # the comments in a column when short
    tried = "\n".join(
        f"{line.ljust(width)}  # {what}" for line, (_, what) in zip(lines, commands, strict=True)
    )
    return (
        f"\ncommsgw is running on the Graph emulator ({emulator}).\n"
        f"  gRPC     {target}  (graphcomms.v1.CallsService)\n"
        f"  webhook  {webhook}\n"
        f"  calls    {emulator}/_emulator/  (each call's timeline, live, in a browser)\n"
        "Try it, in another terminal (flags win over variables: `commsgw demo --help`):\n"
        f"{tried}\n"
        "Ctrl-C stops both.\n"
    )


def hash_token(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from commsgw.server import hash_token as sha256

    token = sys.stdin.read().strip() if args.token == "-" else args.token
    if not token:
        print("commsgw hash-token: no token given", file=sys.stderr)
        return 2
    print(sha256(token))
    return 0


def add_commands(sub: Subparsers) -> None:
    serve_p = subcommand(
        sub,
        "serve",
        "run the gateway (emulator mode unless AZURE_TENANT_ID/AZURE_CLIENT_ID are set)",
        "Run the gateway. Every setting is a flag here and an environment variable (named in "
        "its help); the flag wins. Without AZURE_TENANT_ID and AZURE_CLIENT_ID it talks to the "
        "local Graph emulator (start it first: `commsgw emulator`, or use `commsgw dev`).",
        serve,
        usage="%(prog)s [--SETTING VALUE ...]",
    )
    _config.add_arguments(serve_p)

    dev_p = subcommand(
        sub,
        "dev",
        "run the Graph emulator and the gateway together (what `make run` does)",
        "Run the local Graph emulator and the gateway on it in one process, for development: "
        "no Azure tenant needed. Takes every setting of `commsgw serve` (logs default to text "
        "here). Ctrl-C stops both.",
        dev,
        usage="%(prog)s [--emulator-port PORT] [--ready-file PATH] [--exit-with-parent] "
        "[--SETTING VALUE ...]",
    )
    dev_p.add_argument(
        "--emulator-port",
        type=int,
        default=None,
        help="emulator HTTPS port, 0 for a free one (default: the port of COMMSGW_EMULATOR_URL)",
    )
    dev_p.add_argument(
        "--ready-file",
        metavar="PATH",
        default=None,
        help="once the emulator and the gateway serve, write there (atomically: a temporary "
        'file renamed) one JSON object: {"target": gRPC host:port, "webhookUrl", '
        '"emulatorUrl", "emulatorCaFile": the CA\'s path, "pid"}, the real ports (0 '
        f"resolved); removed on a clean stop (default: none; env {READY_FILE_VARIABLE})",
    )
    dev_p.add_argument(
        "--exit-with-parent",
        action="store_const",
        const=True,
        default=None,
        help="Linux: stop (as on SIGTERM) when the process that started this one dies, so a "
        f"dev a test started never outlives it (default: off; env {EXIT_WITH_PARENT_VARIABLE})",
    )
    _config.add_arguments(dev_p, defaults=DEV_DEFAULTS)


def add_hash_token(sub: Subparsers) -> None:
    hasher = subcommand(
        sub,
        "hash-token",
        "print the SHA-256 of a caller token, for the callers file",
        "Print the SHA-256 (hex) of a bearer token, for COMMSGW_CALLERS_FILE's token_sha256. "
        "Give - to read the token from stdin (keeps it out of the shell's history and the "
        "process list).",
        hash_token,
    )
    hasher.add_argument("token", help="the bearer token a caller will present, or - for stdin")
