"""Whom a command calls, redirects, transfers to or invites: `--user`, `--phone`, `--app` flags
as Graph's invitationParticipantInfo (the gateway checks them: INVALID_IDENTITY)."""

from __future__ import annotations

import argparse

from commsgw.cli._client import flag_group, guid
from graphcomms.v1 import call_types_pb2

# The flags, the identitySet slot each fills, and what each names.
_FLAGS = (
    ("--user", "user", guid, "GUID", "a Teams user, by Entra object id"),
    ("--phone", "phone", str, "E164", "a phone number in E.164 form, e.g. +14255550123"),
    ("--app", "application", guid, "GUID", "a bot, by application id"),
)


def add_identity_arguments(
    p: argparse.ArgumentParser, title: str, *, many: bool = True, replaces: str = ""
) -> None:
    """`--user`, `--phone`, `--app` in a group `title`; with `replaces` (its help), also
    `--replaces-call-id` (InvitationParticipantInfo.replaces_call_id)."""
    again = " (repeat for several)" if many else ""
    g = flag_group(p, title)
    for flag, slot, kind, metavar, what in _FLAGS:
        g.add_argument(
            flag,
            dest=slot,
            action="append",
            type=kind,
            default=[],
            metavar=metavar,
            help=f"{what}{again}",
        )
    if replaces:
        g.add_argument("--replaces-call-id", type=guid, default=None, metavar="GUID", help=replaces)


def invitations(
    args: argparse.Namespace, *, replaces_call_id: str = ""
) -> list[call_types_pb2.InvitationParticipantInfo]:
    """The identities given by the flags, users first, then phones, then bots."""
    out = []
    for _, slot, *_ in _FLAGS:
        for ident in getattr(args, slot):
            identity = call_types_pb2.IdentitySet()
            getattr(identity, slot).id = ident
            out.append(
                call_types_pb2.InvitationParticipantInfo(
                    identity=identity, replaces_call_id=replaces_call_id
                )
            )
    return out
