"""`commsgw serve` (the gateway), `commsgw dev` (the emulator and the gateway in one process,
what `make run` does) and `commsgw hash-token`.

Both servers build their Settings the same way (flag, else environment, else default; dev
defaults to text logs) and check that every address they listen on is free before anything
starts, so that an address in use is one line naming it (exit 2), not a traceback or gRPC's
own log line.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import logging
import os
import pathlib
import shlex
import shutil
import socket
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
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


def dev(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
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
    return _run_server(settings, environ, lambda tracing: _dev(settings, args, environ, tracing))


async def _dev(
    settings: _config.Settings,
    args: argparse.Namespace,
    environ: Mapping[str, str],
    tracing: _tracing.Tracing,
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
    await until_stopped()
    await gateway.shutdown()
    await emulator.stop()


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
        usage="%(prog)s [--emulator-port PORT] [--SETTING VALUE ...]",
    )
    dev_p.add_argument(
        "--emulator-port",
        type=int,
        default=None,
        help="emulator HTTPS port, 0 for a free one (default: the port of COMMSGW_EMULATOR_URL)",
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
