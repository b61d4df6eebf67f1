"""`commsgw demo` (`make demo`): the IVR story against a running `make run` (emulator mode only).

Someone calls the bot and the bot handles the call through the gateway: the demo watches
every call through the gateway (WatchOperations with call updates), has the emulator ring the
gateway's webhook with an incoming call, sees the typed INCOMING CallUpdate, answers it
(AnswerCall) and sees it ESTABLISHED, and subscribes to tones. Then the barge-in: the menu is
long (the emulator plays each of this call's prompts for --menu-seconds), the bot starts it
(PlayPrompt), the caller presses 1 while it plays and the bot sees the tone arrive, so it
cancels the menu (CancelMediaProcessing, with its client context), and the menu's operation
ends as Graph ends a cancelled prompt (FAILED, 400/8508, mediaOperationCanceled). The bot
records the caller's message (RecordResponse, waited; the emulator's caller speaks, then falls
silent), prints where the recording is, hangs up (HangUpCall) and sees the call TERMINATED.
Each step prints one numbered line as it happens.

It exits 0 only when the whole story happened; otherwise one line names the step that did not
come (each step has --step-timeout) and it exits 1 (2 when it cannot start).

Where everything is, each a flag, else its variable, else the default `make run` uses:
  --target    the gateway's gRPC address   $COMMSGW_TARGET              127.0.0.1:50051
  --emulator  the emulator's URL           $COMMSGW_EMULATOR_URL        https://127.0.0.1:8443
  --webhook   the gateway's webhook as     $COMMSGW_PUBLIC_WEBHOOK_URL  http://127.0.0.1:8080/api/calls
              the emulator calls it back
  --emulator-ca  the emulator's CA: emulator-ca.pem in its state dir, $COMMSGW_STATE_DIR, else
              .commsgw (where `commsgw dev` and `commsgw emulator` write it)
`commsgw dev` prints this command with the flags its ports need.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import ssl
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from commsgw import _config
from commsgw.cli._client import (
    Subparsers,
    add_client_arguments,
    connect,
    flag_or_env,
    positive_seconds,
    subcommand,
    target,
)
from commsgw.cli._format import format_event, format_operation
from commsgw_client import GatewayClient, GatewayError
from graphcomms.v1 import call_types_pb2, calls_pb2

T = TypeVar("T")
Event = calls_pb2.WatchOperationsResponse

MENU = "https://cdn.contoso.com/ivr/main-menu.wav"  # the emulator plays any https URI
CALLER = {"speechAfterS": 0.5, "speechS": 1.5}  # speaks for 1.5 s, then falls silent


class StepFailed(Exception):
    """A step of the story did not happen; the message says which and why."""


class Story:
    """Numbered steps, each bounded by the step timeout, and the call's events as the watch
    streams them."""

    def __init__(self, step_timeout: float) -> None:
        self.step_timeout = step_timeout
        self.number = 0
        self.events: asyncio.Queue[Event] = asyncio.Queue()

    async def step(
        self, what: str, action: Awaitable[T], line: Callable[[T], str] | None = None
    ) -> T:
        """Do one step: wait for `action` (within the step timeout) and print its line."""
        self.number += 1
        try:
            async with asyncio.timeout(self.step_timeout):
                result = await action
        except TimeoutError:
            raise StepFailed(
                f"step {self.number} ({what}) did not come within {self.step_timeout:g} s"
            ) from None
        except GatewayError as err:
            raise StepFailed(f"step {self.number} ({what}): error: {err}") from None
        except httpx.HTTPError as err:
            raise StepFailed(f"step {self.number} ({what}): the emulator: {err}") from None
        print(f"{self.number}. {line(result) if line else what}", flush=True)
        return result

    async def sees(
        self, what: str, call_id: str, matches: Callable[[calls_pb2.CallUpdate], bool]
    ) -> None:
        """A step that waits for a call update the watch streams, and prints it."""
        await self.step(what, self.event(call_id, matches), _streamed)

    async def event(self, call_id: str, matches: Callable[[calls_pb2.CallUpdate], bool]) -> Event:
        """The next call update of `call_id` that `matches`, as the watch streamed it."""
        while True:
            resp = await self.events.get()
            ev = resp.event
            kind = ev.WhichOneof("kind")
            if ev.call_id == call_id and kind == "call_update" and matches(ev.call_update):
                return resp


def _state(state: calls_pb2.CallState.ValueType) -> Callable[[calls_pb2.CallUpdate], bool]:
    return lambda cu: cu.state == state and not cu.HasField("tone_info")


def _tone(tone: call_types_pb2.Tone.ValueType) -> Callable[[calls_pb2.CallUpdate], bool]:
    return lambda cu: cu.HasField("tone_info") and cu.tone_info.tone == tone


def _streamed(resp: Event) -> str:
    return f"streamed: {format_event(resp)}"


def _said(text: str) -> Callable[[object], str]:
    return lambda _: text


def _acked(done: str, rpc: str) -> Callable[[Any], str]:
    return lambda r: f"{done} through the gateway ({rpc}), graph request-id {r.graph_request_id}"


def _operation(done: str) -> Callable[[calls_pb2.Operation], str]:
    return lambda op: f"{done}: {format_operation(op)}"


async def _emulator(http: httpx.AsyncClient, method: str, path: str, body: Any) -> Any:
    r = await http.request(method, f"/_emulator{path}", json=body)
    r.raise_for_status()
    return r.json()


async def _cancelled(waited: Awaitable[calls_pb2.WaitOperationResponse]) -> calls_pb2.Operation:
    """The operation of a waited prompt, which must have ended cancelled as Graph ends one:
    FAILED with result 400/8508."""
    op = (await waited).operation
    if op.status != calls_pb2.OPERATION_STATUS_FAILED or op.result_info.subcode != 8508:
        raise StepFailed(f"the menu did not end cancelled: {format_operation(op)}")
    return op


async def tell(
    story: Story,
    gw: GatewayClient,
    gateway: str,
    http: httpx.AsyncClient,
    webhook: str,
    *,
    menu_seconds: float = 20.0,
) -> None:
    """The IVR story, with the gateway `gw` at `gateway` and the emulator's controls on
    `http`; raises StepFailed at the first step that does not happen."""
    watch = gw.watch_operations(include_call_updates=True)
    follow: asyncio.Task[None] | None = None

    async def forward() -> None:
        async for resp in watch:
            if resp.WhichOneof("kind") == "event":
                story.events.put_nowait(resp)

    async def started() -> None:
        first = await anext(watch)  # the START bookmark: the watch is registered
        assert first.WhichOneof("kind") == "bookmark", first

    try:
        await story.step(
            "watch",
            started(),
            _said(
                f"watching every call through the gateway at {gateway} "
                "(WatchOperations with call updates)"
            ),
        )
        follow = asyncio.create_task(forward())
        ring = await story.step(
            "the emulator rings the gateway",
            _emulator(http, "POST", "/calls", {"callbackUri": webhook}),
            lambda r: f"the emulator rings the bot: incoming call {r['id']} (callback {webhook})",
        )
        call_id = str(ring["id"])
        timeout = story.step_timeout
        await story.sees("the INCOMING call update", call_id, _state(calls_pb2.CALL_STATE_INCOMING))
        await story.step(
            "answer the call",
            gw.answer_call(call_id, timeout=timeout),
            _acked("answered", "AnswerCall"),
        )
        await story.sees(
            "the ESTABLISHED call update", call_id, _state(calls_pb2.CALL_STATE_ESTABLISHED)
        )
        await story.step(
            "subscribe to tones",
            gw.subscribe_to_tone(call_id, client_context="ivr-tones", wait=True, timeout=timeout),
            _operation("subscribed to tones (SubscribeToTone)"),
        )
        await story.step(
            "make the menu long",
            _emulator(http, "PUT", f"/calls/{call_id}/media", {"promptS": menu_seconds}),
            _said(f"the menu plays for {menu_seconds:g} s on this call (emulator)"),
        )
        menu = await story.step(
            "play the menu",
            gw.play_prompt(call_id, [MENU], client_context="ivr-menu", timeout=timeout),
            lambda r: f"the menu starts (PlayPrompt): {format_operation(r.operation)}",
        )
        await story.step(
            "the caller presses 1 while the menu plays",
            _emulator(http, "POST", f"/calls/{call_id}/tones", {"tones": "1"}),
            _said("the caller presses 1 while the menu plays (emulator)"),
        )
        await story.sees("the tone 1", call_id, _tone(call_types_pb2.TONE_1))
        await story.step(
            "barge in: cancel the menu",
            gw.cancel_media_processing(
                call_id, client_context="ivr-barge-in", wait=True, timeout=timeout
            ),
            _operation("barge-in: cancelled the menu (CancelMediaProcessing, waited)"),
        )
        await story.step(
            "the menu ends cancelled",
            _cancelled(gw.wait_operation(call_id, menu.operation.id, timeout=timeout)),
            _operation("the menu ended, cancelled (WaitOperation)"),
        )
        await story.step(
            "set the caller's speech",
            _emulator(http, "PUT", f"/calls/{call_id}/caller", CALLER),
            _said(
                f"the caller will speak for {CALLER['speechS']:g} s, then fall silent (emulator)"
            ),
        )
        await story.step(
            "record the message",
            gw.record_response(
                call_id,
                initial_silence_timeout_seconds=5,
                max_silence_timeout_seconds=1,
                max_record_duration_seconds=30,
                client_context="ivr-message",
                wait=True,
                timeout=timeout,
            ),
            _operation("recorded the message (RecordResponse, waited)"),
        )
        await story.step(
            "hang up", gw.hang_up_call(call_id, timeout=timeout), _acked("hung up", "HangUpCall")
        )
        await story.sees(
            "the TERMINATED call update", call_id, _state(calls_pb2.CALL_STATE_TERMINATED)
        )
    finally:
        watch.close()
        if follow is not None:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)


_DEFAULTS = _config.from_sources({})  # the settings' defaults: the gateway `make run` starts
EMULATOR_ENV = "COMMSGW_EMULATOR_URL"
WEBHOOK_ENV = "COMMSGW_PUBLIC_WEBHOOK_URL"
STATE_DIR_ENV = "COMMSGW_STATE_DIR"
DEFAULT_EMULATOR = _DEFAULTS.emulator_url
DEFAULT_WEBHOOK = _DEFAULTS.local_webhook_url()


def emulator_ca(state_dir: str | pathlib.Path) -> pathlib.Path:
    """Where an emulator started with `state_dir` keeps its CA (as the gateway looks for it)."""
    return pathlib.Path(state_dir) / _config.EMULATOR_CA_FILE


@dataclass(frozen=True)
class Where:
    """Where the demo finds everything: from its flags, else their variables, else defaults."""

    target: str
    emulator: str
    webhook: str
    emulator_ca: pathlib.Path

    @classmethod
    def of(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> Where:
        """Raises CannotStart for a URL that is not one (naming its flag and variable)."""
        state_dir = environ.get(STATE_DIR_ENV) or _config.DEFAULT_STATE_DIR
        emulator = flag_or_env(args.emulator, environ, EMULATOR_ENV, DEFAULT_EMULATOR)
        webhook = flag_or_env(args.webhook, environ, WEBHOOK_ENV, DEFAULT_WEBHOOK)
        return cls(
            target=target(args, environ),
            emulator=_url(emulator, f"--emulator/${EMULATOR_ENV}", ("https",)),
            webhook=_url(webhook, f"--webhook/${WEBHOOK_ENV}", ("http", "https")),
            emulator_ca=pathlib.Path(args.emulator_ca)
            if args.emulator_ca
            else emulator_ca(state_dir),
        )


class CannotStart(Exception):
    """The demo cannot begin: what it needs is not where its flags say."""


def _url(value: str, what: str, schemes: tuple[str, ...]) -> str:
    """`value` when it is an absolute URL of one of `schemes` with a host, else CannotStart."""
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 (a bad port raises)
    except ValueError as exc:
        raise CannotStart(f"{what}={value!r} is not a URL: {exc}") from None
    if url.scheme not in schemes or not url.hostname:
        raise CannotStart(f"{what}={value!r} is not a {' or '.join(schemes)} URL with a host")
    return value


async def _preflight(http: httpx.AsyncClient, where: Where) -> None:
    try:
        r = await http.get("/_emulator/health")
        r.raise_for_status()
    except httpx.HTTPError as err:
        raise CannotStart(
            f"no emulator answers at {where.emulator} (--emulator, ${EMULATOR_ENV}): {err}; "
            "is `make run` running?"
        ) from None


async def run_demo(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    try:
        where = Where.of(args, environ)
    except CannotStart as bad:
        print(f"commsgw demo: {bad}", file=sys.stderr)
        return 2
    try:
        verify = ssl.create_default_context(cafile=str(where.emulator_ca))
    except OSError as exc:
        print(
            f"commsgw demo: no emulator CA at {where.emulator_ca} (--emulator-ca; default "
            f"{_config.EMULATOR_CA_FILE} in ${STATE_DIR_ENV}, else {_config.DEFAULT_STATE_DIR}): "
            f"{exc.strerror or exc}; is `make run` running?",
            file=sys.stderr,
        )
        return 2
    story = Story(args.step_timeout)
    async with (
        httpx.AsyncClient(verify=verify, base_url=where.emulator, timeout=10) as http,
        connect(args, environ) as gw,
    ):
        try:
            await _preflight(http, where)
        except CannotStart as failed:
            print(f"commsgw demo: {failed}", file=sys.stderr)
            return 2
        try:
            await tell(story, gw, where.target, http, where.webhook, menu_seconds=args.menu_seconds)
        except StepFailed as failed:
            print(f"demo: {failed}", file=sys.stderr)
            return 1
    print(
        "done: the gateway answered the call, started the menu, heard 1 while it played and "
        "cancelled it (barge-in), recorded the message and hung up; every step streamed back "
        "typed."
    )
    return 0


def main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return asyncio.run(run_demo(args, environ))


def add_command(sub: Subparsers) -> None:
    p = subcommand(
        sub,
        "demo",
        "the IVR story end to end, against a running `make run`",
        __doc__ or "",
        main,
        preformatted=True,
    )
    where = p.add_argument_group("where the emulator is (and where it calls the gateway back)")
    where.add_argument(
        "--emulator",
        default=None,
        metavar="URL",
        help=f"the emulator's URL (default ${EMULATOR_ENV}, else {DEFAULT_EMULATOR})",
    )
    where.add_argument(
        "--emulator-ca",
        default=None,
        metavar="PEM",
        help=f"the emulator's CA (default {_config.EMULATOR_CA_FILE} in ${STATE_DIR_ENV}, else "
        f"in {_config.DEFAULT_STATE_DIR}: where the emulator writes it)",
    )
    where.add_argument(
        "--webhook",
        default=None,
        metavar="URL",
        help="the gateway's webhook as the emulator reaches it, the incoming call's callback "
        f"(default ${WEBHOOK_ENV}, else {DEFAULT_WEBHOOK})",
    )
    p.add_argument(
        "--menu-seconds",
        type=positive_seconds,
        default=20.0,
        help="how long the emulator plays the menu, which the caller interrupts (default 20)",
    )
    p.add_argument(
        "--step-timeout",
        type=positive_seconds,
        default=15.0,
        help="the longest each step may take, in seconds (default 15)",
    )
    add_client_arguments(p)
