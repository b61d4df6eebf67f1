"""A first calling bot on commsgw: answers every incoming call, plays a menu, and when the caller
presses 1 (while the menu plays: it cancels the menu, a barge-in) records a message, downloads
the recording and hangs up. Any other key, or none within a few seconds of the menu's end, and
it says goodbye by hanging up.

    python bot.py --target 127.0.0.1:50051 --recordings ./messages

The gateway is at --target, else COMMSGW_TARGET, else 127.0.0.1:50051 (`make run` starts one on
the Graph emulator). Recordings are downloaded from their recordingLocation with the
recordingAccessToken as the bearer token, over HTTPS verified with --ca-file (the emulator's CA,
.commsgw/emulator-ca.pem) or the system's trust store; each is saved as <operation id>.wav.
It runs until stopped (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import ssl
import sys
import urllib.request

from commsgw_client import GatewayClient, GatewayError
from graphcomms.v1 import call_types_pb2, calls_pb2
from graphcomms.v1.calls_pb2 import Event

MENU = "https://cdn.contoso.com/ivr/main-menu.wav"  # "press 1 to leave a message"
CHOICE_AFTER_MENU_S = 5.0  # how long the bot waits for a key once the menu has ended
TIMEOUT_S = 30.0  # the longest one RPC (or one wait for an operation) may take
DONE = (calls_pb2.OPERATION_STATUS_COMPLETED, calls_pb2.OPERATION_STATUS_FAILED)


class CallEnded(Exception):
    """The caller hung up."""


def say(call_id: str, what: str) -> None:
    print(f"{call_id[:8]} {what}", flush=True)


async def next_event(events: asyncio.Queue[Event]) -> Event:
    event = await events.get()
    update = event.call_update if event.HasField("call_update") else None
    if update is not None and update.state == calls_pb2.CALL_STATE_TERMINATED:
        raise CallEnded
    return event


async def established(events: asyncio.Queue[Event]) -> None:
    while True:
        event = await next_event(events)
        update = event.call_update
        if update.state == calls_pb2.CALL_STATE_ESTABLISHED and not update.HasField("tone_info"):
            return


async def choice(
    events: asyncio.Queue[Event], menu_id: str
) -> tuple[call_types_pb2.Tone.ValueType | None, bool]:
    """The first key the caller presses, and whether the menu was still playing then;
    (None, False) when the menu ended and no key came within CHOICE_AFTER_MENU_S."""
    menu_playing = True
    while True:
        try:
            async with asyncio.timeout(None if menu_playing else CHOICE_AFTER_MENU_S):
                event = await next_event(events)
        except TimeoutError:
            return None, False
        if event.HasField("call_update") and event.call_update.HasField("tone_info"):
            return event.call_update.tone_info.tone, menu_playing
        if event.HasField("operation_update"):
            op = event.operation_update.operation
            if op.id == menu_id and op.status in DONE:
                menu_playing = False


def download(url: str, token: str, context: ssl.SSLContext) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, context=context, timeout=TIMEOUT_S) as response:
        body: bytes = response.read()
        return body


class Bot:
    def __init__(self, gw: GatewayClient, recordings: pathlib.Path, tls: ssl.SSLContext) -> None:
        self.gw = gw
        self.recordings = recordings
        self.tls = tls
        self.calls: dict[str, asyncio.Queue[Event]] = {}

    async def handle(self, call_id: str, events: asyncio.Queue[Event]) -> bool:
        """One call, answered to hung up; True when the caller left a message."""
        gw = self.gw
        await gw.answer_call(call_id, timeout=TIMEOUT_S)
        await established(events)
        say(call_id, "answered")
        await gw.subscribe_to_tone(call_id, client_context="tones", wait=True, timeout=TIMEOUT_S)
        menu = await gw.play_prompt(call_id, [MENU], client_context="menu", timeout=TIMEOUT_S)
        say(call_id, "playing the menu")
        tone, menu_playing = await choice(events, menu.operation.id)
        if tone != call_types_pb2.TONE_1:
            say(call_id, f"no message ({call_types_pb2.Tone.Name(tone) if tone else 'no key'})")
            await gw.hang_up_call(call_id, timeout=TIMEOUT_S)
            return False
        if menu_playing:  # barge-in: the caller did not wait for the menu to end
            await gw.cancel_media_processing(
                call_id, client_context="barge-in", wait=True, timeout=TIMEOUT_S
            )
            say(call_id, "pressed 1 during the menu: cancelled it")
        record = await gw.record_response(
            call_id,
            initial_silence_timeout_seconds=5,
            max_silence_timeout_seconds=1,
            max_record_duration_seconds=60,
            client_context="message",
            wait=True,
            timeout=90,
        )
        if record.status != calls_pb2.OPERATION_STATUS_COMPLETED or not record.recording_location:
            say(call_id, f"recording failed: {record.result_info.message or record.status}")
            await gw.hang_up_call(call_id, timeout=TIMEOUT_S)
            return False
        wav = await asyncio.to_thread(
            download, record.recording_location, record.recording_access_token, self.tls
        )
        saved = self.recordings / f"{record.id}.wav"
        await asyncio.to_thread(saved.write_bytes, wav)
        say(call_id, f"saved the message: {saved} ({len(wav)} bytes)")
        await gw.hang_up_call(call_id, timeout=TIMEOUT_S)
        say(call_id, "hung up")
        return True

    async def run_call(self, call_id: str, events: asyncio.Queue[Event]) -> bool:
        try:
            return await self.handle(call_id, events)
        except CallEnded:
            say(call_id, "the caller hung up")
        except GatewayError as err:
            say(call_id, f"error: {err}")
        finally:
            del self.calls[call_id]
        return False

    async def run(self) -> None:
        """Watch every call (until stopped); a task for each incoming one."""
        handlers: set[asyncio.Task[bool]] = set()
        async with self.gw.watch_operations(include_call_updates=True) as watch:
            async for response in watch:
                if response.HasField("bookmark"):
                    if response.bookmark.kind == calls_pb2.BOOKMARK_KIND_START:
                        print("watching for calls", flush=True)
                    continue
                event = response.event
                if event.call_id in self.calls:
                    self.calls[event.call_id].put_nowait(event)
                elif (
                    event.HasField("call_update")
                    and event.call_update.state == calls_pb2.CALL_STATE_INCOMING
                ):
                    say(event.call_id, "incoming call")
                    events = self.calls[event.call_id] = asyncio.Queue()
                    task = asyncio.create_task(self.run_call(event.call_id, events))
                    handlers.add(task)
                    task.add_done_callback(handlers.discard)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target",
        default=os.environ.get("COMMSGW_TARGET", "127.0.0.1:50051"),
        help="the gateway's gRPC address (default: COMMSGW_TARGET, else 127.0.0.1:50051)",
    )
    parser.add_argument("--recordings", type=pathlib.Path, default=pathlib.Path("."))
    parser.add_argument("--ca-file", help="CA to verify recording downloads (the emulator's)")
    args = parser.parse_args(argv)
    tls = ssl.create_default_context(cafile=args.ca_file)
    args.recordings.mkdir(parents=True, exist_ok=True)
    async with GatewayClient(args.target) as gw:
        await Bot(gw, args.recordings, tls).run()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
