"""The `commsgw` command: run the gateway (or the emulator), and cancel or watch as a person.

This is the only module that reads the process environment; it hands it to the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pathlib
import signal
import sys
from collections.abc import Sequence

import grpc
from google.protobuf import json_format
from grpc_status import rpc_status

from commsgw import _config, _logging
from commsgw._errors import CommsgwError, ConfigError
from graphcomms.v1 import calls_pb2, calls_pb2_grpc

GATEWAY_DEFAULT = "127.0.0.1:50051"


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
    dev.add_argument("--emulator-port", type=int, default=8443, help="emulator HTTPS port")
    sub.add_parser("emulator", help="run the local Graph emulator", add_help=False)
    sub.add_parser(
        "demo", help="the cancellation story against a running `make run`", add_help=False
    )

    cancel = sub.add_parser("cancel", help="cancel a call's media operations through the gateway")
    cancel.add_argument("--call-id", required=True, help="the Graph call id (GUID)")
    cancel.add_argument("--client-context", default="", help="clientContext (<= 256 chars)")
    cancel.add_argument("--tenant-id", default="", help="tenant (default: the gateway's)")
    cancel.add_argument("--target", default=GATEWAY_DEFAULT, help="gateway gRPC address")
    cancel.add_argument("--timeout", type=float, default=30.0, help="deadline in seconds")
    cancel.add_argument("--json", action="store_true", help="print the response as JSON")

    hasher = sub.add_parser(
        "hash-token", help="print the SHA-256 of a caller token, for the callers file"
    )
    hasher.add_argument("token", help="the bearer token a caller will present")

    watch = sub.add_parser("watch", help="stream operation updates from the gateway")
    watch.add_argument("--call-id", action="append", default=[], help="only this call (repeat)")
    watch.add_argument("--resume", default="", help="resume after this token")
    watch.add_argument("--snapshot", action="store_true", help="start with the latest states")
    watch.add_argument("--calls", action="store_true", help="include call state changes")
    watch.add_argument("--other", action="store_true", help="include other notifications")
    watch.add_argument("--json", action="store_true", help="print JSON lines")
    watch.add_argument("--target", default=GATEWAY_DEFAULT, help="gateway gRPC address")
    watch.add_argument(
        "--max-events", type=int, default=0, help="stop after this many events (0: never)"
    )
    return p


def describe_rpc_error(err: grpc.aio.AioRpcError | grpc.RpcError) -> str:
    """One line: status, ErrorInfo reason and Graph's request-id."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    reason = ""
    request_id = ""
    try:
        status = rpc_status.from_call(err)
    except Exception:  # a malformed status is still reported by its code
        status = None
    if status is not None:
        from google.rpc import error_details_pb2

        for d in status.details:
            info = error_details_pb2.ErrorInfo()
            if d.Unpack(info):
                reason = info.reason
                request_id = info.metadata.get("graph_request_id", "")
    name = code.name if code is not None else "UNKNOWN"
    line = f"error: {name}: {details}"
    if reason:
        line += f" (reason={reason}"
        line += f", graph_request_id={request_id})" if request_id else ")"
    return line


async def _cancel(args: argparse.Namespace) -> int:
    async with grpc.aio.insecure_channel(args.target) as channel:
        stub = calls_pb2_grpc.CallsServiceStub(channel)
        try:
            resp = await stub.CancelMediaProcessing(
                calls_pb2.CancelMediaProcessingRequest(
                    call_id=args.call_id,
                    client_context=args.client_context,
                    tenant_id=args.tenant_id,
                ),
                timeout=args.timeout,
            )
        except grpc.aio.AioRpcError as err:
            print(describe_rpc_error(err), file=sys.stderr)
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


def format_event(resp: calls_pb2.WatchOperationsResponse) -> str:
    if resp.WhichOneof("kind") == "bookmark":
        return f"bookmark {calls_pb2.BookmarkKind.Name(resp.bookmark.kind)}"
    ev = resp.event
    kind = ev.WhichOneof("kind")
    head = f"call {ev.call_id} {calls_pb2.ChangeType.Name(ev.change_type)}"
    if kind == "operation_update":
        op = ev.operation_update.operation
        ri = op.result_info
        line = (
            f"{head} operation {op.id} {calls_pb2.OperationType.Name(op.type)} "
            f"{calls_pb2.OperationStatus.Name(op.status)}"
        )
        if op.HasField("result_info"):
            line += f" result={ri.code}/{ri.subcode}"
        if op.completion_reason:
            line += f" reason={op.completion_reason}"
        if op.client_context:
            line += f" client_context={op.client_context!r}"
        return line
    if kind == "call_update":
        cu = ev.call_update
        return f"{head} state {calls_pb2.CallState.Name(cu.state)}"
    return f"{head} other {ev.other.odata_type}"


async def _watch(args: argparse.Namespace) -> int:
    token = args.resume
    seen = 0
    backoff = 0.5
    while True:
        async with grpc.aio.insecure_channel(args.target) as channel:
            stub = calls_pb2_grpc.CallsServiceStub(channel)
            req = calls_pb2.WatchOperationsRequest(
                call_ids=args.call_id,
                resume_token=token,
                include_snapshot=args.snapshot and not token,
                include_call_updates=args.calls,
                include_other=args.other,
            )
            try:
                async for resp in stub.WatchOperations(req):
                    backoff = 0.5
                    token = resp.resume_token
                    if args.json:
                        print(json_format.MessageToJson(resp, indent=None), flush=True)
                    else:
                        print(format_event(resp), flush=True)
                    if resp.WhichOneof("kind") == "event":
                        seen += 1
                        if args.max_events and seen >= args.max_events:
                            return 0
            except grpc.aio.AioRpcError as err:
                retryable = err.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                )
                print(describe_rpc_error(err), file=sys.stderr)
                if not retryable:
                    return 1
        print(f"stream ended; resuming in {backoff:.1f} s", file=sys.stderr)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


async def _dev(settings_args: argparse.Namespace, environ: dict[str, str]) -> None:
    from commsgw._server import Gateway
    from commsgw.emulator import Emulator, EmulatorConfig

    environ = dict(environ)
    state_dir = environ.get("COMMSGW_STATE_DIR") or settings_args.state_dir or ".commsgw"
    emulator = Emulator(
        EmulatorConfig(port=settings_args.emulator_port, state_dir=pathlib.Path(state_dir))
    )
    await emulator.start()
    environ.setdefault("COMMSGW_EMULATOR_URL", emulator.base_url)
    environ.setdefault("COMMSGW_CA_FILE", str(emulator.ca_path))
    settings = _config.from_sources(environ, settings_args)
    gateway = Gateway(settings)
    await gateway.start()
    print(
        f"\ncommsgw is running on the Graph emulator ({emulator.base_url}).\n"
        f"  gRPC     127.0.0.1:{gateway.grpc_port}  (graphcomms.v1.CallsService)\n"
        f"  webhook  http://{settings.http_addr.host}:{gateway.http_port}{settings.webhook_path}\n"
        "Try it, in another terminal:\n"
        "  make demo                                   # the cancellation story end to end\n"
        "  .venv/bin/commsgw watch --calls             # stream every operation update\n"
        "  .venv/bin/commsgw cancel --call-id <id>     # cancel a call's media operations\n"
        "Ctrl-C stops both.\n",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await gateway.stop()
    await emulator.stop()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        from commsgw.emulator import main as emulator_main

        return emulator_main(argv[1:])
    if argv and argv[0] == "demo":
        from commsgw._demo import main as demo_main

        return demo_main(argv[1:], dict(os.environ))
    args = _parser().parse_args(argv)
    environ = dict(os.environ)
    try:
        if args.command == "serve":
            settings = _config.from_sources(environ, args)
            _logging.setup(settings.log_level, settings.log_format)
            from commsgw._server import serve

            asyncio.run(serve(settings))
            return 0
        if args.command == "dev":
            _logging.setup(
                environ.get("COMMSGW_LOG_LEVEL", "INFO").upper(),
                environ.get("COMMSGW_LOG_FORMAT", "text"),
            )
            asyncio.run(_dev(args, environ))
            return 0
        if args.command == "hash-token":
            from commsgw._callers import hash_token

            print(hash_token(args.token))
            return 0
        if args.command == "cancel":
            return asyncio.run(_cancel(args))
        if args.command == "watch":
            try:
                code: int = asyncio.run(_watch(args))
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
