"""Whom a command calls, redirects, transfers to or invites: `--user`, `--phone`, `--app` flags
as Graph's invitationParticipantInfo (the gateway checks them: INVALID_IDENTITY)."""

from __future__ import annotations

import argparse

from commsgw.cli._client import guid
from graphcomms.v1 import call_types_pb2


def add_identity_arguments(p: argparse.ArgumentParser, title: str, *, many: bool = True) -> None:
    again = " (repeat for several)" if many else ""
    g = p.add_argument_group(title)
    g.add_argument(
        "--user",
        action="append",
        type=guid,
        default=[],
        help=f"a Teams user, by Entra object id{again}",
    )
    g.add_argument(
        "--phone",
        action="append",
        default=[],
        help=f"a phone number in E.164 form, e.g. +14255550123{again}",
    )
    g.add_argument(
        "--app",
        action="append",
        type=guid,
        default=[],
        help=f"a bot, by application id{again}",
    )


def invitations(
    args: argparse.Namespace, *, replaces_call_id: str = ""
) -> list[call_types_pb2.InvitationParticipantInfo]:
    """The identities given by the flags, users first, then phones, then bots."""
    out = []
    for slot, ids in (("user", args.user), ("phone", args.phone), ("application", args.app)):
        for ident in ids:
            identity = call_types_pb2.IdentitySet()
            getattr(identity, slot).id = ident
            out.append(
                call_types_pb2.InvitationParticipantInfo(
                    identity=identity, replaces_call_id=replaces_call_id
                )
            )
    return out
