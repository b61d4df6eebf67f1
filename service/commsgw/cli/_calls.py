"""The call lifecycle commands: create, get, answer, reject, redirect, transfer, hangup,
keepalive (CreateCall ... KeepAlive through `commsgw_client`)."""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from commsgw.cli._client import Subparsers, command, guid, options
from commsgw.cli._identities import add_identity_arguments, invitations
from commsgw_client import GatewayClient
from graphcomms.v1 import call_types_pb2, calls_pb2

_REJECT_REASONS = {
    "none": calls_pb2.REJECT_REASON_NONE,
    "busy": calls_pb2.REJECT_REASON_BUSY,
    "forbidden": calls_pb2.REJECT_REASON_FORBIDDEN,
}


def _participant(slot: str, ident: str | None) -> call_types_pb2.ParticipantInfo | None:
    """A participantInfo with one identity (`slot`: user, application_instance, ...)."""
    if not ident:
        return None
    info = call_types_pb2.ParticipantInfo()
    getattr(info.identity, slot).id = ident
    return info


def _one_identity(args: argparse.Namespace) -> call_types_pb2.InvitationParticipantInfo:
    found = invitations(args, replaces_call_id=args.replaces_call_id or "")
    if len(found) != 1:
        raise ValueError("give exactly one of --user, --phone or --app")
    return found[0]


async def _create(gw: GatewayClient, args: argparse.Namespace) -> Message:
    source = _participant("application_instance", args.source_app_instance)
    meeting = None
    if args.meeting_id:
        meeting = call_types_pb2.JoinMeetingId(
            join_meeting_id=args.meeting_id, passcode=args.passcode
        )
    return await gw.create_call(
        targets=invitations(args),
        source=source,
        join_url=args.join_url,
        join_meeting_id=meeting,
        subject=args.subject,
        callback_uri=args.callback_uri,
        pre_fetch_media=args.prefetch,
        **options(args),
    )


async def _get(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.get_call(args.call_id, **options(args))


async def _answer(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.answer_call(
        args.call_id,
        callback_uri=args.callback_uri,
        pre_fetch_media=args.prefetch,
        participant_capacity=args.participant_capacity,
        **options(args),
    )


async def _reject(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.reject_call(
        args.call_id,
        reason=_REJECT_REASONS[args.reason],
        callback_uri=args.callback_uri,
        **options(args),
    )


async def _redirect(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.redirect_call(
        args.call_id,
        invitations(args),
        timeout_seconds=args.ring_seconds,
        callback_uri=args.callback_uri,
        **options(args),
    )


async def _transfer(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.transfer_call(
        args.call_id,
        _one_identity(args),
        transferee=_participant("user", args.transferee_user),
        client_context=args.client_context,
        **options(args),
    )


async def _hang_up(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.hang_up_call(args.call_id, **options(args))


async def _keep_alive(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await gw.keep_alive(args.call_id, **options(args))


def _callback(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--callback-uri",
        default="",
        metavar="URL",
        help=f"where Graph sends the call's notifications ({default})",
    )


def _prefetch(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prefetch",
        action="append",
        default=[],
        metavar="URI",
        help="an audio file (https) Graph fetches ahead of time (repeat)",
    )


def add_commands(sub: Subparsers) -> None:
    p = command(
        sub,
        "create",
        "place a call or join a meeting (CreateCall)",
        "Place a call from the bot: to one Teams user (--user), a group call (up to five "
        "--user), a phone number (--phone with --source-app-instance, the resource account "
        "whose number calls), or join an online meeting (--join-url, or --meeting-id with "
        "--passcode). Prints the call (ESTABLISHING); its progress arrives in "
        "`commsgw watch --calls`.",
        _create,
        call_id=False,
    )
    add_identity_arguments(p, "whom to call")
    p.add_argument(
        "--source-app-instance",
        type=guid,
        default=None,
        metavar="GUID",
        help="the application instance a phone call comes from",
    )
    p.add_argument("--join-url", metavar="URL", help="a Teams meeting's join URL, to join it")
    p.add_argument("--meeting-id", metavar="DIGITS", help="a meeting's numeric id, to join it")
    p.add_argument(
        "--passcode", default="", metavar="TEXT", help="the meeting's passcode, with --meeting-id"
    )
    p.add_argument("--subject", default="", metavar="TEXT", help="the call's subject")
    _callback(p, "default: the gateway's webhook")
    _prefetch(p)

    command(sub, "get", "read a call (GetCall)", "Read a call's state from Graph.", _get)

    p = command(
        sub,
        "answer",
        "answer an incoming call (AnswerCall)",
        "Answer an incoming call (a CallUpdate in state INCOMING; Graph drops it 15 s after it "
        "rang) with service-hosted media. The ESTABLISHED state follows as a CallUpdate.",
        _answer,
    )
    _callback(p, "default: the gateway's webhook")
    _prefetch(p)
    p.add_argument(
        "--participant-capacity",
        type=int,
        default=0,
        help="policy-based recording bots: how many participants the bot handles (1 to 1000)",
    )

    p = command(
        sub,
        "reject",
        "decline an incoming call (RejectCall)",
        "Decline an incoming call. An answered call is ended with `commsgw hangup`.",
        _reject,
    )
    p.add_argument("--reason", choices=sorted(_REJECT_REASONS), default="none", help="why")
    _callback(p, "default: Graph's")

    p = command(
        sub,
        "redirect",
        "send an incoming call elsewhere (RedirectCall)",
        "Redirect an incoming call that was not answered to 1 to 25 targets, ringing at once.",
        _redirect,
    )
    add_identity_arguments(p, "where to")
    p.add_argument(
        "--ring-seconds",
        type=int,
        default=0,
        help="how long the targets ring, 15 to 90 (default: Graph's)",
    )
    _callback(p, "default: Graph's")

    p = command(
        sub,
        "transfer",
        "transfer an established call (TransferCall)",
        "Transfer an established call to one target (blind), or with --replaces-call-id "
        "replace another call of the bot (consultative). Its progress arrives as CallUpdates.",
        _transfer,
        client_context=True,
    )
    add_identity_arguments(
        p,
        "to whom (exactly one)",
        many=False,
        replaces="consultative transfer: the bot's other call, which the target replaces",
    )
    p.add_argument(
        "--transferee-user",
        type=guid,
        default=None,
        metavar="GUID",
        help="from a group call: the participant (a Teams user) being transferred",
    )

    command(
        sub,
        "hangup",
        "end the bot's leg of a call (HangUpCall)",
        "Hang up: the bot leaves the call; a TERMINATED CallUpdate follows.",
        _hang_up,
    )
    command(
        sub,
        "keepalive",
        "tell Graph the call is still in use (KeepAlive)",
        "Send keepAlive for a call. The gateway already sends one every "
        "COMMSGW_KEEPALIVE_INTERVAL_S for every established call it has seen, unless "
        "COMMSGW_MANAGED_KEEPALIVE is off.",
        _keep_alive,
    )
