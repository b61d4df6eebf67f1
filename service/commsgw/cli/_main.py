"""The `commsgw` command: run the gateway (or the emulator), and act on calls as a person.

This is the only module that reads the process environment; it hands it to the settings and
to the subcommands. The subcommands live by family: `_serve` (serve, dev, hash-token), `_calls`
(the call lifecycle), `_media` (prompts, recordings, tones, cancel), `_participants`,
`_operations` (operation, wait), `_watch` and `_demo`; `_client` is how each of them reaches
the gateway and prints the answer.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from commsgw import __version__
from commsgw._errors import CommsgwError, ConfigError
from commsgw.cli import (
    _calls,
    _demo,
    _doctor,
    _media,
    _operations,
    _participants,
    _serve,
    _watch,
)

DESCRIPTION = """\
gRPC gateway in front of Microsoft Graph cloud communications (calls).

`serve` and `dev` run a gateway; every other command is a client of one, found at --target,
else $COMMSGW_TARGET, else 127.0.0.1:50051 (COMMSGW_GRPC_ADDR is where a gateway listens;
clients never read it). Errors print one line on stderr (a JSON object with --json) and exit
1; a bad flag exits 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="commsgw",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"commsgw {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve.add_commands(sub)
    sub.add_parser(
        "emulator",
        help="run the local Graph emulator, the commsgw-emulator distribution (also its own "
        "command, commsgw-emulator; see `commsgw emulator -h`)",
    )
    _demo.add_command(sub)
    _doctor.add_command(sub)
    _calls.add_commands(sub)
    _media.add_commands(sub)
    _participants.add_commands(sub)
    _operations.add_commands(sub)
    _watch.add_command(sub)
    _serve.add_hash_token(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        try:
            emulator = _serve.load_emulator()
        except _serve.EmulatorMissing as err:
            print(f"commsgw emulator: {err.message}", file=sys.stderr)
            return 2
        exit_code: int = emulator.main(argv[1:])
        return exit_code
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args, dict(os.environ))
    except (_serve.CannotListen, _serve.EmulatorMissing) as err:
        print(f"commsgw {args.command}: {err.message}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"commsgw {args.command}: invalid setting: {err.message}", file=sys.stderr)
        return 2
    except CommsgwError as err:
        print(f"commsgw {args.command}: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
