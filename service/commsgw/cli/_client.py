"""How a subcommand reaches the gateway and prints its answer.

The flags every client command shares (where the gateway is: `--target`, else
$COMMSGW_TARGET, else 127.0.0.1:50051; TLS and the bearer token), the flags every RPC shares
(`--tenant-id`, `--client-request-id`, `--timeout`, `--json`), the value checks of argparse
(a bad value exits 2 with argparse's message), and `run`: the one way a command calls the
gateway and prints the response, or the error as ONE line on stderr (a JSON object with
`--json`), exit 1. `COMMSGW_GRPC_ADDR` is where a gateway listens; clients never read it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

from google.protobuf import json_format
from google.protobuf.message import Message

from commsgw._ids import normalize_guid
from commsgw.cli._format import describe
from commsgw_client import GatewayClient, GatewayError, OperationNotDoneError
from graphcomms.v1 import call_types_pb2

DEFAULT_TARGET = "127.0.0.1:50051"
TARGET_ENV = "COMMSGW_TARGET"
TOKEN_ENV = "COMMSGW_TOKEN"

Action = Callable[[GatewayClient, argparse.Namespace], Awaitable[Message]]
"""What a command asks the gateway: an RPC through the client library, given the flags."""
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What `add_subparsers` answers: where each family adds its commands."""
Handler = Callable[[argparse.Namespace, Mapping[str, str]], int]
"""A subcommand's entry point: its flags and the process environment; the exit code."""


# ---- values (argparse types: a ValueError/ArgumentTypeError exits 2 with the message) ----


def guid(text: str) -> str:
    if normalize_guid(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a GUID")
    return text


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 seconds")
    return value


_DURATION = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]*)?)\s*(?P<unit>ms|s|m|h|)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """`30s`, `2m`, `1h`, `500ms` or plain seconds, more than 0."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or not float(m["n"]) > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30s, 2m or 1h")
    return float(m["n"]) * _UNIT_S[m["unit"]]


_TONE_KEYS = {
    **{str(d): getattr(call_types_pb2, f"TONE_{d}") for d in range(10)},
    "*": call_types_pb2.TONE_STAR,
    "#": call_types_pb2.TONE_POUND,
    **{k: getattr(call_types_pb2, f"TONE_{k}") for k in "ABCD"},
}


def tones(text: str) -> list[call_types_pb2.Tone.ValueType]:
    """Keys as pressed: `123#`, `*`, `A` (0-9, *, #, A-D)."""
    keys = [k for k in text.upper() if not k.isspace()]
    unknown = [k for k in keys if k not in _TONE_KEYS]
    if not keys or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: use the keys 0-9, *, # and A-D")
    return [_TONE_KEYS[k] for k in keys]


# ---- flags ---------------------------------------------------------------------------------


def add_client_arguments(p: argparse.ArgumentParser) -> None:
    """Where the gateway is and how to reach it."""
    g = p.add_argument_group("gateway")
    g.add_argument(
        "--target",
        default=None,
        metavar="HOST:PORT",
        help=f"the gateway's gRPC address HOST:PORT (default ${TARGET_ENV}, else {DEFAULT_TARGET})",
    )
    g.add_argument("--tls", action="store_true", help="use TLS (implied by --ca-file/--cert)")
    g.add_argument("--ca-file", metavar="PEM", help="PEM file of the CAs to trust (TLS)")
    g.add_argument("--cert", metavar="PEM", help="client certificate PEM file (mutual TLS)")
    g.add_argument("--key", metavar="PEM", help="client private key PEM file (mutual TLS)")
    g.add_argument(
        "--token",
        default=None,
        help=f"bearer token sent as `authorization: Bearer <token>` (default ${TOKEN_ENV})",
    )


def add_rpc_arguments(
    p: argparse.ArgumentParser,
    *,
    call_id: bool = True,
    client_context: bool = False,
    wait: bool = False,
) -> None:
    """The flags of a command that makes one RPC: the call, the tenant, the client-request-id,
    the deadline, `--json`, and where the gateway is."""
    if call_id:
        p.add_argument(
            "--call-id", required=True, metavar="GUID", help="the Graph call id (a GUID)"
        )
    if client_context:
        p.add_argument(
            "--client-context",
            default="",
            metavar="TEXT",
            help="Graph's clientContext for the operation (at most 256 characters)",
        )
    if wait:
        p.add_argument(
            "--wait",
            action="store_true",
            help="wait until the operation is COMPLETED or FAILED (WaitOperation) and print it; "
            "within --timeout, else exit 1 with OPERATION_NOT_DONE and its last state",
        )
    g = p.add_argument_group("request")
    g.add_argument(
        "--tenant-id",
        default="",
        metavar="GUID",
        help="the call's tenant (default: the gateway's own)",
    )
    g.add_argument(
        "--client-request-id",
        type=guid,
        default=None,
        metavar="GUID",
        help="a GUID sent to Graph as client-request-id (default: the gateway makes one)",
    )
    g.add_argument(
        "--timeout",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="deadline in seconds, waiting included (default 30)",
    )
    g.add_argument(
        "--json", action="store_true", help="print the response (or the error) as one JSON line"
    )
    add_client_arguments(p)


_SHARED_GROUPS = ("request", "gateway")


def flag_group(p: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """A group of a command's own flags, which `--help` lists before the shared ones."""
    group = p.add_argument_group(title)
    groups = p._action_groups
    shared = [i for i, g in enumerate(groups) if g.title in _SHARED_GROUPS]
    if shared:
        groups.insert(shared[0], groups.pop())
    return group


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments every client method takes, from the flags."""
    return {
        "tenant_id": args.tenant_id,
        "client_request_id": args.client_request_id,
        "timeout": args.timeout,
    }


async def media_call(
    method: Callable[..., Awaitable[Message]], *positional: Any, args: argparse.Namespace
) -> Message:
    """A media method of the client (`play_prompt`, ...) with the shared flags, `--client-context`
    and `--wait` (which makes it answer the terminal Operation instead of the response)."""
    kwargs = {**options(args), "client_context": args.client_context}
    if args.wait:
        return await method(*positional, wait=True, **kwargs)
    return await method(*positional, wait=False, **kwargs)


def flag_or_env(flag: str | None, environ: Mapping[str, str], name: str, default: str) -> str:
    """A client's one rule for where something is: the flag, else the variable, else the
    default (an empty variable is unset)."""
    return flag or environ.get(name) or default


def target(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    return flag_or_env(args.target, environ, TARGET_ENV, DEFAULT_TARGET)


def connect(args: argparse.Namespace, environ: Mapping[str, str]) -> GatewayClient:
    return GatewayClient(
        target(args, environ),
        tls=True if args.tls else None,
        root_certificates=args.ca_file,
        client_certificate=args.cert,
        client_private_key=args.key,
        bearer_token=args.token or environ.get(TOKEN_ENV) or None,
    )


# ---- output --------------------------------------------------------------------------------


def to_json(message: Message) -> str:
    return json_format.MessageToJson(message, indent=None)


def report_error(err: GatewayError, as_json: bool) -> None:
    """The error on stderr: `error: CODE: message (reason=..., graph_request_id=...)`, or a
    JSON object with `--json` (with the last known operation of a wait that ran out)."""
    if not as_json:
        print(f"error: {err}", file=sys.stderr)
        return
    out: dict[str, Any] = {
        "code": err.code.name,
        "message": err.message,
        "reason": err.reason,
        "graph_request_id": err.graph_request_id,
        "client_request_id": err.client_request_id,
        "metadata": err.metadata,
    }
    if isinstance(err, OperationNotDoneError) and err.operation is not None:
        out["operation"] = json_format.MessageToDict(err.operation)
    print(json.dumps({"error": out}), file=sys.stderr)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """The handler of every RPC command: make the command's call (`args.action`), print the
    answer; exit 0, 1 after a gateway error, 2 for unusable client options."""
    action: Action = args.action

    async def call() -> Message:
        async with connect(args, environ) as gw:
            return await action(gw, args)

    try:
        response = asyncio.run(call())
    except GatewayError as err:
        report_error(err, args.json)
        return 1
    except (ValueError, OSError) as exc:  # contradicting or unreadable TLS files
        print(f"commsgw {args.command}: {exc}", file=sys.stderr)
        return 2
    print(to_json(response) if args.json else describe(response))
    return 0


def subcommand(
    sub: Subparsers,
    name: str,
    summary: str,
    description: str,
    handler: Handler,
    *,
    preformatted: bool = False,
    usage: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand run by `handler`; a `preformatted` description keeps its own lines."""
    p = sub.add_parser(
        name,
        help=summary,
        description=description,
        usage=usage,
        formatter_class=(
            argparse.RawDescriptionHelpFormatter if preformatted else argparse.HelpFormatter
        ),
    )
    p.set_defaults(handler=handler)
    return p


def command(
    sub: Subparsers, name: str, summary: str, description: str, action: Action, **rpc: bool
) -> argparse.ArgumentParser:
    """A subcommand that makes one RPC (`action`), with the shared RPC flags."""
    p = subcommand(sub, name, summary, description, run)
    p.set_defaults(action=action)
    add_rpc_arguments(p, **rpc)
    return p
