"""The media and in-call commands: play, record, subscribe-tones, dtmf, mute, unmute,
recording-status and cancel. Each prints the operation Graph started; with `--wait`, the
operation once it is COMPLETED or FAILED."""

from __future__ import annotations

import argparse
import functools

from google.protobuf.message import Message

from commsgw.cli._client import Subparsers, command, media_call, tones
from commsgw_client import GatewayClient
from graphcomms.v1 import calls_pb2

_RECORDING_STATUSES = {
    "recording": calls_pb2.RECORDING_STATUS_RECORDING,
    "not-recording": calls_pb2.RECORDING_STATUS_NOT_RECORDING,
    "failed": calls_pb2.RECORDING_STATUS_FAILED,
}


async def _play(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await media_call(gw.play_prompt, args.call_id, args.uri, args=args)


async def _record(gw: GatewayClient, args: argparse.Namespace) -> Message:
    record = functools.partial(
        gw.record_response,
        prompts=[args.prompt] if args.prompt else [],
        barge_in_allowed=args.barge_in,
        initial_silence_timeout_seconds=args.initial_silence,
        max_silence_timeout_seconds=args.max_silence,
        max_record_duration_seconds=args.max_duration,
        play_beep=args.beep,
        stop_tones=[t for keys in args.stop_tone for t in keys],
    )
    return await media_call(record, args.call_id, args=args)


async def _subscribe_tones(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await media_call(gw.subscribe_to_tone, args.call_id, args=args)


async def _dtmf(gw: GatewayClient, args: argparse.Namespace) -> Message:
    dtmf = functools.partial(gw.send_dtmf_tones, delay_between_tones_ms=args.delay_ms)
    return await media_call(dtmf, args.call_id, args.tones, args=args)


async def _mute(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await media_call(gw.mute, args.call_id, args=args)


async def _unmute(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await media_call(gw.unmute, args.call_id, args=args)


async def _recording_status(gw: GatewayClient, args: argparse.Namespace) -> Message:
    status = _RECORDING_STATUSES[args.status]
    return await media_call(gw.update_recording_status, args.call_id, status, args=args)


async def _cancel(gw: GatewayClient, args: argparse.Namespace) -> Message:
    return await media_call(gw.cancel_media_processing, args.call_id, args=args)


def _seconds(p: argparse.ArgumentParser, flag: str, what: str) -> None:
    p.add_argument(flag, type=int, default=None, metavar="S", help=f"{what}, 1 to 120 s")


def add_commands(sub: Subparsers) -> None:
    media = {"client_context": True, "wait": True}
    p = command(
        sub,
        "play",
        "play audio files to a call (PlayPrompt)",
        "Play 1 to 20 audio files (https URIs of 16 kHz mono WAVs), queued after the call's "
        "other prompts and recordings.",
        _play,
        **media,
    )
    p.add_argument("uri", nargs="+", help="an audio file's https URI")

    p = command(
        sub,
        "record",
        "record what the caller says (RecordResponse)",
        "Play at most one prompt and a beep, then record the caller until silence, the longest "
        "duration or a stop tone. The completed operation carries the recording's location "
        "(printed) and its access token (only in --json, for callers with recordings.read).",
        _record,
        **media,
    )
    p.add_argument("--prompt", default=None, metavar="URI", help="a prompt to play first")
    _seconds(p, "--initial-silence", "silence allowed before the caller speaks (Graph: 5)")
    _seconds(p, "--max-silence", "silence allowed after the caller spoke (Graph: 5)")
    _seconds(p, "--max-duration", "longest recording (Graph: 5)")
    p.add_argument(
        "--beep",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="play a beep before recording (Graph's default: yes)",
    )
    p.add_argument(
        "--barge-in",
        action="store_true",
        help="start at once, cancelling the prompts and recordings queued before it",
    )
    p.add_argument(
        "--stop-tone",
        type=tones,
        action="append",
        default=[],
        metavar="KEYS",
        help="keys that end the recording, e.g. '#' (0-9, *, #, A-D; repeat or give several)",
    )

    command(
        sub,
        "subscribe-tones",
        "report the keys the caller presses (SubscribeToTone)",
        "Subscribe to the call's DTMF tones: each key pressed then arrives as a CallUpdate with "
        "a tone (`commsgw watch --calls`).",
        _subscribe_tones,
        **media,
    )

    p = command(
        sub,
        "dtmf",
        "send DTMF tones into a call (SendDtmfTones)",
        "Send keys into the call, e.g. to drive another IVR (global cloud only).",
        _dtmf,
        **media,
    )
    p.add_argument("tones", type=tones, help="the keys, e.g. 123# (0-9, *, #, A-D)")
    p.add_argument(
        "--delay-ms",
        type=int,
        default=0,
        metavar="MS",
        help="pause between tones, 0 to 5000 (0: Graph's)",
    )

    command(sub, "mute", "mute the bot (Mute)", "Mute the bot itself in a call.", _mute, **media)
    command(sub, "unmute", "unmute the bot (Unmute)", "Unmute the bot in a call.", _unmute, **media)

    p = command(
        sub,
        "recording-status",
        "say whether the bot records (UpdateRecordingStatus)",
        "Tell Graph and the call's participants whether the bot records; a compliance bot "
        "says `recording` before it records.",
        _recording_status,
        **media,
    )
    p.add_argument("status", choices=list(_RECORDING_STATUSES), help="the bot's recording status")

    command(
        sub,
        "cancel",
        "cancel a call's media operations (CancelMediaProcessing)",
        "Cancel the running and queued media operations (playPrompt, recordResponse) of a "
        "call: Graph's cancelMediaProcessing, through the gateway. Each cancelled operation "
        "then ends FAILED (400/8508) in `commsgw watch`. Errors print the gRPC status, the "
        "ErrorInfo reason and Graph's request-id on one line and exit 1.",
        _cancel,
        **media,
    )
