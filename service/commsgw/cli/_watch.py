"""`commsgw watch`: stream what Graph reports, through the gateway (WatchOperations), resuming
after disconnects; give up when the gateway stays unreachable; print the last resume token on
the way out."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Mapping
from typing import Any

import grpc

from commsgw.cli._client import (
    Subparsers,
    add_client_arguments,
    connect,
    duration,
    report_error,
    subcommand,
    target,
    to_json,
)
from commsgw.cli._format import format_event
from commsgw_client import (
    GatewayError,
    OperationWatch,
    ResumeTokenExpiredError,
    UnavailableError,
)
from graphcomms.v1 import calls_pb2

DESCRIPTION = """\
Stream what Graph reports about calls and their media operations, through the gateway.

Every response carries a resume token. After a disconnect or SUBSCRIBER_TOO_SLOW the watch
resumes by itself with the last one, losing nothing; while the gateway cannot be reached it
keeps trying for --give-up-after, then prints one line naming the target and exits 1.

After a gateway restart: with the in-memory event log (COMMSGW_EVENT_LOG=memory, the default,
what `make run` uses) the restarted gateway no longer holds the token and answers OUT_OF_RANGE
(RESUME_TOKEN_EXPIRED): what happened in between is lost. --on-expired=exit (the default)
then prints one line and exits 1; --on-expired=snapshot starts again without a token, with the
latest state of every matching operation first (a SNAPSHOT_END bookmark ends it). With a Redis
event log the token stays valid across restarts and replicas, and the watch goes on where it
was.

On SIGINT (Ctrl-C) or SIGTERM it prints the last resume token on stderr (`resume token: ...`,
for --resume) and exits 130 or 143. Another error prints one line and exits 1."""

_POLL_S = 0.25  # how often an outage's length is checked


class _GaveUp(Exception):
    pass


def _request_args(args: argparse.Namespace) -> dict[str, object]:
    return {
        "call_ids": args.call_id,
        "tenant_ids": args.tenant_id,
        "statuses": [
            calls_pb2.OperationStatus.Value(f"OPERATION_STATUS_{s.upper()}") for s in args.status
        ],
        "client_context": args.client_context,
        "include_call_updates": args.calls,
        "include_other": args.other,
    }


async def _next(
    watch: OperationWatch, stopped: asyncio.Future[int], give_up_after: float
) -> calls_pb2.WatchOperationsResponse | None:
    """The watch's next response; None when a signal came first. Raises _GaveUp when the watch
    has been reconnecting for `give_up_after` seconds without an answer."""
    loop = asyncio.get_running_loop()
    reconnects = watch.reconnects
    outage_since: float | None = None
    following = asyncio.ensure_future(anext(watch))
    try:
        while True:
            waiting: list[asyncio.Future[Any]] = [following, stopped]
            await asyncio.wait(waiting, timeout=_POLL_S, return_when=asyncio.FIRST_COMPLETED)
            if following.done():
                return following.result()
            if stopped.done():
                return None
            if watch.reconnects > reconnects:
                outage_since = loop.time() if outage_since is None else outage_since
                if loop.time() - outage_since >= give_up_after:
                    raise _GaveUp()
    finally:
        if not following.done():
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)


async def _watch(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: int) -> None:
        if not stopped.done():
            stopped.set_result(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    token, snapshot, seen = args.resume, args.snapshot, 0
    watch: OperationWatch | None = None

    def last_token() -> None:
        if watch is not None and watch.resume_token and watch.resume_token != args.resume:
            print(f"resume token: {watch.resume_token}", file=sys.stderr, flush=True)

    async with connect(args, environ) as gw:
        while True:
            watch = gw.watch_operations(
                **_request_args(args),  # type: ignore[arg-type]
                include_snapshot=snapshot and not token,
                resume_token=token,
            )
            try:
                while True:
                    resp = await _next(watch, stopped, args.give_up_after)
                    if resp is None:
                        last_token()
                        return 128 + stopped.result()
                    print(to_json(resp) if args.json else format_event(resp), flush=True)
                    if resp.WhichOneof("kind") == "event":
                        seen += 1
                        if args.max_events and seen >= args.max_events:
                            last_token()
                            return 0
            except ResumeTokenExpiredError as err:
                if args.on_expired != "snapshot":
                    report_error(err, args.json)
                    return 1
                print(
                    f"watch: the resume token expired ({err.code.name}: the gateway's log no "
                    "longer holds it, as after a restart with the in-memory log); starting "
                    "again with a snapshot",
                    file=sys.stderr,
                    flush=True,
                )
                token, snapshot = "", True
            except _GaveUp:
                last = watch.last_error
                report_error(
                    UnavailableError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"gave up after {args.give_up_after:g} s: the gateway at "
                        f"{target(args, environ)} cannot be reached ({last or 'no answer'})",
                        reason=last.reason if last is not None else "",
                    ),
                    args.json,
                )
                last_token()
                return 1
            except GatewayError as err:
                report_error(err, args.json)
                last_token()
                return 1
            finally:
                watch.close()


def main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    # The client library logs each reconnect as a warning: shown with --verbose only, so that
    # giving up is one line.
    library = logging.getLogger("commsgw_client")
    if args.verbose:
        logging.basicConfig(format="watch: %(message)s")
    else:
        library.addHandler(logging.NullHandler())
        library.propagate = False
    return asyncio.run(_watch(args, environ))


def add_command(sub: Subparsers) -> None:
    watch = subcommand(
        sub,
        "watch",
        "stream call and operation updates from the gateway (WatchOperations)",
        DESCRIPTION,
        main,
        preformatted=True,
    )
    watch.add_argument(
        "--call-id",
        action="append",
        default=[],
        metavar="GUID",
        help="only this call (repeat for several)",
    )
    watch.add_argument(
        "--tenant-id", action="append", default=[], metavar="GUID", help="only this tenant (repeat)"
    )
    watch.add_argument(
        "--status",
        action="append",
        default=[],
        choices=["not_started", "running", "completed", "failed"],
        help="only operations with this status (repeat)",
    )
    watch.add_argument(
        "--client-context",
        default="",
        metavar="TEXT",
        help="only operations with exactly this clientContext",
    )
    watch.add_argument("--calls", action="store_true", help="also call state changes and tones")
    watch.add_argument(
        "--other", action="store_true", help="also other notifications (participants, ...)"
    )
    watch.add_argument(
        "--resume", default="", metavar="TOKEN", help="resume after this token (from a watch)"
    )
    watch.add_argument(
        "--snapshot",
        action="store_true",
        help="first print the latest state of every matching operation (without --resume)",
    )
    watch.add_argument(
        "--on-expired",
        choices=["exit", "snapshot"],
        default="exit",
        help="when the resume token has expired (OUT_OF_RANGE, e.g. after a restart of a "
        "gateway with an in-memory log): exit 1 (default), or start again with a snapshot",
    )
    watch.add_argument(
        "--give-up-after",
        type=duration,
        default=30.0,
        metavar="DURATION",
        help="stop trying to reach the gateway after this long without an answer, e.g. 30s, "
        "2m (default 30s)",
    )
    watch.add_argument("--json", action="store_true", help="print JSON lines (bookmarks included)")
    watch.add_argument(
        "-v", "--verbose", action="store_true", help="print each reconnect attempt on stderr"
    )
    watch.add_argument(
        "--max-events",
        type=int,
        default=0,
        metavar="N",
        help="stop after this many events (0: never)",
    )
    add_client_arguments(watch)
