"""`commsgw operation` (GetOperation) and `commsgw wait` (WaitOperation): an operation's latest
known state, or its end."""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from commsgw.cli._client import Subparsers, command, options
from commsgw_client import GatewayClient


async def _get(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.get_operation(args.call_id, args.operation_id, **options(args))


async def _wait(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.wait_operation(args.call_id, args.operation_id, **options(args))


def _operation_id(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--operation-id",
        required=True,
        help="the operation's id, as a media command printed it (a GUID)",
    )


def add_commands(sub: Subparsers) -> None:
    p = command(
        sub,
        "operation",
        "an operation's latest known state (GetOperation)",
        "The latest known state of an operation: from the gateway's event log (the last "
        "notification Graph sent about it), else from Graph; `source` says which.",
        _get,
    )
    _operation_id(p)
    p = command(
        sub,
        "wait",
        "wait until an operation is done (WaitOperation)",
        "Wait until an operation is COMPLETED or FAILED and print it: at once when it already "
        "ended. When --timeout runs out first: exit 1, DEADLINE_EXCEEDED / OPERATION_NOT_DONE "
        "(with --json, the last known state is in the error object).",
        _wait,
    )
    _operation_id(p)
