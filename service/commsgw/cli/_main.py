"""The `commsgw` command: run the gateway (or the emulator), and cancel or watch as a person.

This is the only module that reads the process environment; it hands it to the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from google.protobuf import json_format

from commsgw import _config, _logging, _tracing
from commsgw._errors import CommsgwError, ConfigError
from commsgw.cli._format import format_event
from commsgw_client import GatewayClient, GatewayError
from graphcomms.v1 import calls_pb2

GATEWAY_DEFAULT = "127.0.0.1:50051"


def _client_arguments(p: argparse.ArgumentParser) -> None:
    """Where the gateway is and how to reach it (shared by cancel and watch)."""
    p.add_argument(
        "--target",
        default=GATEWAY_DEFAULT,
        help=f"gateway gRPC address (default {GATEWAY_DEFAULT})",
    )
    p.add_argument("--tls", action="store_true", help="use TLS (implied by --ca-file/--cert)")
    p.add_argument("--ca-file", default=None, help="PEM file of the CAs to trust (TLS)")
    p.add_argument("--cert", default=None, help="client certificate PEM file (mutual TLS)")
    p.add_argument("--key", default=None, help="client private key PEM file (mutual TLS)")
    p.add_argument(
        "--token",
        default=None,
        help="bearer token sent as `authorization: Bearer <token>` (default: $COMMSGW_TOKEN)",
    )


def _client(args: argparse.Namespace, environ: Mapping[str, str]) -> GatewayClient:
    return GatewayClient(
        args.target,
        tls=True if args.tls else None,
        root_certificates=args.ca_file,
        client_certificate=args.cert,
        client_private_key=args.key,
        bearer_token=args.token or environ.get("COMMSGW_TOKEN") or None,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="commsgw",
        description="gRPC gateway in front of Microsoft Graph cloud communications (calls).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the gateway (emulator mode unless AZURE_TENANT_ID/AZURE_CLIENT_ID are set)",
    )
    _config.add_arguments(serve)
    dev = sub.add_parser(
        "dev", help="run the Graph emulator and the gateway together (what `make run` does)"
    )
    _config.add_arguments(dev)
    dev.add_argument(
        "--emulator-port",
        type=int,
        default=None,
        help="emulator HTTPS port, 0 for a free one (default: the port of COMMSGW_EMULATOR_URL)",
    )
    sub.add_parser("emulator", help="run the local Graph emulator", add_help=False)
    sub.add_parser(
        "demo", help="the cancellation story against a running `make run`", add_help=False
    )

    cancel = sub.add_parser(
        "cancel",
        help="cancel a call's media operations through the gateway",
        description="Cancel the running and queued media operations (playPrompt, "
        "recordResponse) of a call: Graph's cancelMediaProcessing, through the gateway. "
        "Errors print the gRPC status, the ErrorInfo reason and Graph's request-id on one "
        "line and exit 1.",
    )
    cancel.add_argument("--call-id", required=True, help="the Graph call id (a GUID)")
    cancel.add_argument(
        "--client-context", default="", help="Graph's clientContext for the cancel (<= 256 chars)"
    )
    cancel.add_argument(
        "--tenant-id", default="", help="the call's tenant (default: the gateway's own)"
    )
    cancel.add_argument(
        "--client-request-id",
        default=None,
        help="sent to Graph as client-request-id (default: the gateway generates one)",
    )
    cancel.add_argument(
        "--timeout", type=float, default=30.0, help="deadline in seconds (default 30)"
    )
    cancel.add_argument("--json", action="store_true", help="print the response as one JSON line")
    _client_arguments(cancel)

    hasher = sub.add_parser(
        "hash-token", help="print the SHA-256 of a caller token, for the callers file"
    )
    hasher.add_argument("token", help="the bearer token a caller will present")

    watch = sub.add_parser(
        "watch",
        help="stream operation updates from the gateway",
        description="Stream what Graph reports about media operations, through the gateway. "
        "Resumes by itself with the last token after a disconnect, a gateway restart or "
        "SUBSCRIBER_TOO_SLOW; an expired token (OUT_OF_RANGE) or another error prints one line "
        "and exits 1. The last token is printed on stderr at exit, for --resume.",
    )
    watch.add_argument(
        "--call-id", action="append", default=[], help="only this call (repeat for several)"
    )
    watch.add_argument("--tenant-id", action="append", default=[], help="only this tenant (repeat)")
    watch.add_argument(
        "--status",
        action="append",
        default=[],
        choices=["not_started", "running", "completed", "failed"],
        help="only operations with this status (repeat)",
    )
    watch.add_argument(
        "--client-context", default="", help="only operations with exactly this clientContext"
    )
    watch.add_argument("--resume", default="", help="resume after this token (from a watch)")
    watch.add_argument(
        "--snapshot",
        action="store_true",
        help="first print the latest state of every matching operation (without --resume)",
    )
    watch.add_argument("--calls", action="store_true", help="also call state changes")
    watch.add_argument(
        "--other", action="store_true", help="also other notifications (participants, ...)"
    )
    watch.add_argument("--json", action="store_true", help="print JSON lines (bookmarks included)")
    watch.add_argument(
        "--max-events", type=int, default=0, help="stop after this many events (0: never)"
    )
    _client_arguments(watch)
    return p


def describe_error(err: GatewayError) -> str:
    """One line: status, message, ErrorInfo reason and Graph's request-id."""
    return f"error: {err}"


async def _cancel(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    try:
        async with _client(args, environ) as gw:
            resp = await gw.cancel_media_processing(
                args.call_id,
                client_context=args.client_context,
                tenant_id=args.tenant_id,
                client_request_id=args.client_request_id,
                timeout=args.timeout,
            )
    except GatewayError as err:
        print(describe_error(err), file=sys.stderr)
        return 1
    if args.json:
        print(json_format.MessageToJson(resp, indent=None))
    else:
        op = resp.operation
        print(
            f"operation {op.id} {calls_pb2.OperationStatus.Name(op.status)} "
            f"client_context={op.client_context!r}\n"
            f"location {resp.location}\ngraph request-id {resp.graph_request_id}"
        )
    return 0


async def _watch(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    seen = 0
    async with _client(args, environ) as gw:
        watch = gw.watch_operations(
            call_ids=args.call_id,
            tenant_ids=args.tenant_id,
            statuses=[
                calls_pb2.OperationStatus.Value(f"OPERATION_STATUS_{s.upper()}")
                for s in args.status
            ],
            client_context=args.client_context,
            include_call_updates=args.calls,
            include_other=args.other,
            include_snapshot=args.snapshot,
            resume_token=args.resume,
        )
        try:
            async for resp in watch:
                if args.json:
                    print(json_format.MessageToJson(resp, indent=None), flush=True)
                else:
                    print(format_event(resp), flush=True)
                if resp.WhichOneof("kind") == "event":
                    seen += 1
                    if args.max_events and seen >= args.max_events:
                        return 0
        except GatewayError as err:
            print(describe_error(err), file=sys.stderr)
            return 1
        finally:
            watch.close()
            if watch.resume_token and watch.resume_token != args.resume:
                print(f"resume token: {watch.resume_token}", file=sys.stderr)
    return 0


# `commsgw dev` is for a person at a terminal: text logs unless asked otherwise.
DEV_DEFAULTS = {"log_format": "text"}


async def _dev(
    settings: _config.Settings,
    args: argparse.Namespace,
    environ: Mapping[str, str],
    tracing: _tracing.Tracing,
) -> None:
    from commsgw.emulator import Emulator, EmulatorConfig
    from commsgw.server import Gateway, until_stopped

    url = urlsplit(settings.emulator_url)
    host = url.hostname or "127.0.0.1"
    port = args.emulator_port if args.emulator_port is not None else (url.port or 443)
    emulator = Emulator(EmulatorConfig(host=host, port=port, state_dir=settings.state_dir))
    try:
        await emulator.start()
    except OSError as exc:
        raise ConfigError(
            f"COMMSGW_EMULATOR_URL={settings.emulator_url}: the emulator cannot listen on "
            f"{host}:{port} ({exc.strerror or exc})"
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
    print(
        f"\ncommsgw is running on the Graph emulator ({emulator.base_url}).\n"
        f"  gRPC     {settings.grpc_addr.host}:{gateway.grpc_port}  (graphcomms.v1.CallsService)\n"
        f"  webhook  http://{settings.http_addr.host}:{gateway.http_port}{settings.webhook_path}\n"
        "Try it, in another terminal:\n"
        "  make demo                                   # the cancellation story end to end\n"
        "  .venv/bin/commsgw watch --calls             # stream every operation update\n"
        "  .venv/bin/commsgw cancel --call-id <id>     # cancel a call's media operations\n"
        "Ctrl-C stops both.\n",
        flush=True,
    )
    await until_stopped()
    await gateway.shutdown()
    await emulator.stop()


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop the gateway runs on: uvloop unless asyncio's own is asked for."""
    if name == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        from commsgw.emulator import main as emulator_main

        return emulator_main(argv[1:])
    if argv and argv[0] == "demo":
        from commsgw.cli._demo import main as demo_main

        return demo_main(argv[1:], dict(os.environ))
    args = _parser().parse_args(argv)
    environ = dict(os.environ)
    try:
        if args.command == "serve":
            settings = _config.from_sources(environ, args)
            _logging.setup(settings.log_level, settings.log_format)
            from commsgw.server import serve

            tracing = _tracing.from_environment(environ)
            try:
                with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
                    runner.run(serve(settings, tracing))
            finally:
                tracing.shutdown()  # flush the spans not exported yet
            return 0
        if args.command == "dev":
            settings = _config.from_sources(environ, args, defaults=DEV_DEFAULTS)
            if not settings.emulator_mode:
                raise ConfigError(
                    "commsgw dev runs the gateway on the emulator: unset AZURE_TENANT_ID and "
                    "AZURE_CLIENT_ID, or run `commsgw serve` against Graph"
                )
            _logging.setup(settings.log_level, settings.log_format)
            tracing = _tracing.from_environment(environ)
            try:
                with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
                    runner.run(_dev(settings, args, environ, tracing))
            finally:
                tracing.shutdown()
            return 0
        if args.command == "hash-token":
            from commsgw.server._callers import hash_token

            print(hash_token(args.token))
            return 0
        if args.command == "cancel":
            return asyncio.run(_cancel(args, environ))
        if args.command == "watch":
            try:
                code: int = asyncio.run(_watch(args, environ))
            except KeyboardInterrupt:
                return 130
            return code
    except ConfigError as err:
        print(f"commsgw: invalid setting: {err.message}", file=sys.stderr)
        return 2
    except CommsgwError as err:
        print(f"commsgw: {err.message}", file=sys.stderr)
        return 1
    return 2
