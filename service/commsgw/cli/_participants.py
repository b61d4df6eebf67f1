"""`commsgw participants list|invite|mute|remove|hold|unhold`: a call's participants
(ListParticipants, InviteParticipants, MuteParticipant, RemoveParticipant, StartHoldMusic,
StopHoldMusic)."""

from __future__ import annotations

import argparse
import functools

from google.protobuf.message import Message

from commsgw.cli._client import Subparsers, command, media_call, options, run, subcommand
from commsgw.cli._identities import add_identity_arguments, invitations
from commsgw_client import GatewayClient


async def _list(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.list_participants(args.call_id, **options(args))


async def _invite(gw: GatewayClient, args: argparse.Namespace) -> Message:
    invited = invitations(args, replaces_call_id=args.replaces_call_id or "")
    return await media_call(gw.invite_participants, args.call_id, invited, args=args)


async def _mute(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await media_call(gw.mute_participant, args.call_id, args.participant_id, args=args)


async def _remove(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.remove_participant(args.call_id, args.participant_id, **options(args))


async def _hold(gw: GatewayClient, args: argparse.Namespace) -> Message:
    hold = functools.partial(gw.start_hold_music, custom_prompt=args.music or None)
    return await media_call(hold, args.call_id, args.participant_id, args=args)


async def _unhold(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await media_call(gw.stop_hold_music, args.call_id, args.participant_id, args=args)


def _participant(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--participant-id", required=True, help="the participant's id (`participants list`)"
    )


def add_commands(sub: Subparsers) -> None:
    group = subcommand(
        sub,
        "participants",
        "list, invite, mute, remove, hold or unhold a call's participants",
        "A call's participants, through the gateway.",
        run,
    )
    actions = group.add_subparsers(dest="participants_command", required=True)
    command(
        actions,
        "list",
        "list the participants (ListParticipants)",
        "List a call's participants: id, identity, muted, in the lobby.",
        _list,
    )
    p = command(
        actions,
        "invite",
        "invite participants (InviteParticipants)",
        "Invite 1 to 5 participants into a group call or meeting; one with --replaces-call-id "
        "moves a peer-to-peer call of the bot into it.",
        _invite,
        client_context=True,
        wait=True,
    )
    add_identity_arguments(
        p, "whom to invite", replaces="the peer-to-peer call the participant is moved from"
    )
    p = command(
        actions,
        "mute",
        "mute a participant (MuteParticipant)",
        "Mute another participant of a group call.",
        _mute,
        client_context=True,
        wait=True,
    )
    _participant(p)
    p = command(
        actions,
        "remove",
        "remove a participant (RemoveParticipant)",
        "Remove a participant from a group call (the tenant must allow the app to).",
        _remove,
    )
    _participant(p)
    p = command(
        actions,
        "hold",
        "put a participant on hold, with music (StartHoldMusic)",
        "Put a participant on hold: Graph plays its hold music, or --music, until `unhold`.",
        _hold,
        client_context=True,
        wait=True,
    )
    _participant(p)
    p.add_argument("--music", default="", metavar="URI", help="https URI of the hold music")
    p = command(
        actions,
        "unhold",
        "take a participant off hold (StopHoldMusic)",
        "Take a participant off hold: the hold music stops.",
        _unhold,
        client_context=True,
        wait=True,
    )
    _participant(p)
