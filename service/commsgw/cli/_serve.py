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
import logging
import socket
import sys
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from commsgw import _config, _logging, _tracing
from commsgw._errors import ConfigError
from commsgw.cli._client import Subparsers, subcommand

log = logging.getLogger("commsgw.cli")

# `commsgw dev` is for a person at a terminal: text logs unless asked otherwise.
DEV_DEFAULTS = {"log_format": "text"}


class CannotListen(ConfigError):
    """An address a server should listen on is taken (or cannot be bound)."""


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
    from commsgw.emulator import Emulator, EmulatorConfig
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
    grpc_target = f"{settings.grpc_addr.host}:{gateway.grpc_port}"
    print(
        f"\ncommsgw is running on the Graph emulator ({emulator.base_url}).\n"
        f"  gRPC     {grpc_target}  (graphcomms.v1.CallsService)\n"
        f"  webhook  http://{settings.http_addr.host}:{gateway.http_port}{settings.webhook_path}\n"
        "Try it, in another terminal (clients find the gateway at $COMMSGW_TARGET, else "
        "127.0.0.1:50051):\n"
        "  make demo                                   # the IVR story end to end\n"
        "  .venv/bin/commsgw watch --calls             # stream every call and operation update\n"
        "  .venv/bin/commsgw --help                    # a command per RPC\n"
        "Ctrl-C stops both.\n",
        flush=True,
    )
    await until_stopped()
    await gateway.shutdown()
    await emulator.stop()


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
