"""``commsgw emulator`` and ``commsgw-emulator``: run the Graph emulator in the foreground until
SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import pathlib
import signal
import socket
import sys
import textwrap
from collections.abc import Mapping

from commsgw._config import DEFAULT_STATE_DIR, EMULATOR_CA_FILE, SETTINGS
from commsgw.emulator import _control_api
from commsgw.emulator._app import DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID, Emulator, EmulatorConfig

# Bind failures: the port is taken, the address is not this machine's, or it is privileged.
_CANNOT_LISTEN = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


# The timings a test may set (declared with the gateway's settings: `commsgw dev` has them too).
_SETTINGS = {s.attr: s for s in SETTINGS}
_TIMINGS: dict[str, tuple[str, ...]] = {
    "media_op_seconds": (),
    "ring_seconds": (),
    "answer_window_seconds": (),
    "establish_delay_seconds": (),
    "notification_delay_seconds": ("--notification-delay",),
}
_CONTROLS = """test controls (no authentication), all under https://HOST:PORT/_emulator/, described
by the OpenAPI 3.1 document at GET /_emulator/openapi.json:
{controls}
Fields are camelCase; a bad input answers a JSON error {{"error": {{"code", "message"}}}}.
"""


def _epilog() -> str:
    rows = [
        f"  {c.method} {c.path}\n"
        + textwrap.fill(c.summary, width=88, initial_indent="      ", subsequent_indent="      ")
        for c in _control_api.CONTROLS
    ]
    return _CONTROLS.format(controls="\n".join(rows))


def _parser(
    environ: Mapping[str, str] | None = None, prog: str = "commsgw emulator"
) -> argparse.ArgumentParser:
    """The parser; the timings default to `environ` (None: no variables set)."""
    environ = environ or {}
    p = argparse.ArgumentParser(
        prog=prog,
        description="Local HTTPS emulator of Microsoft Graph's calls API and of the identity "
        "platform's tokens, for development and tests only. `commsgw dev` runs it together "
        "with a gateway; this runs it alone (then `commsgw serve` in emulator mode uses it).",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=8443, help="HTTPS port (default 8443; 0 picks a free one)"
    )
    p.add_argument(
        "--state-dir",
        type=pathlib.Path,
        default=pathlib.Path(DEFAULT_STATE_DIR),
        help=f"where {EMULATOR_CA_FILE} and the server certificate are written (default "
        f"{DEFAULT_STATE_DIR}, where the gateway looks in emulator mode)",
    )
    p.add_argument(
        "--tenant-id",
        default=DEFAULT_TENANT_ID,
        help=f"the tenant it issues tokens for (default {DEFAULT_TENANT_ID})",
    )
    p.add_argument(
        "--client-id",
        default=DEFAULT_CLIENT_ID,
        help=f"the bot's app id it accepts (default {DEFAULT_CLIENT_ID})",
    )
    p.add_argument(
        "--client-secret",
        default="emulator-secret",
        help="the client secret it accepts (default emulator-secret)",
    )
    for attr, aliases in _TIMINGS.items():
        setting = _SETTINGS[attr]
        raw = environ.get(setting.env, setting.default)
        try:
            default = setting.parse(raw)
        except ValueError as exc:
            p.error(f"{setting.env}={raw!r}: {exc}")
        p.add_argument(
            setting.flag,
            *aliases,
            dest=attr,
            type=setting.parse,
            default=default,
            metavar="SECONDS",
            help=f"{setting.help.removeprefix('emulator: ')} (default {setting.default}; "
            f"env {setting.env})",
        )
    p.add_argument(
        "--token-lifetime",
        type=int,
        default=3600,
        help="app token lifetime, seconds (default 3600)",
    )
    p.add_argument(
        "--batch-notifications",
        action="store_true",
        help="deliver a call's pending notifications together in one POST, as Graph may",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    return p


async def _serve(config: EmulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with Emulator(config) as emu:
        print(f"base_url={emu.base_url}", flush=True)
        print(f"graph_url={emu.graph_url}", flush=True)
        print(f"authority={emu.authority()}", flush=True)
        print(f"ca_path={emu.ca_path}", flush=True)
        print(f"notification_openid_config_url={emu.notification_openid_config_url}", flush=True)
        print(f"tenant_id={config.tenant_id} client_id={config.client_id}", flush=True)
        print(f"controls={emu.base_url}/_emulator/openapi.json", flush=True)
        print(f"page={emu.base_url}/_emulator/", flush=True)
        await stop.wait()


def console() -> int:
    """The `commsgw-emulator` command (the commsgw-emulator distribution's entry point)."""
    return main(prog="commsgw-emulator")


def main(argv: list[str] | None = None, prog: str = "commsgw emulator") -> int:
    """Entry point; ``argv`` excludes the program name (a leading "emulator" is tolerated)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        args_list = args_list[1:]
    args = _parser(os.environ, prog).parse_args(args_list)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir.resolve(),
        tenant_id=args.tenant_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        media_op_seconds=args.media_op_seconds,
        ring_s=args.ring_seconds,
        answer_window_s=args.answer_window_seconds,
        establish_delay_s=args.establish_delay_seconds,
        notification_delay=args.notification_delay_seconds,
        token_lifetime_s=args.token_lifetime,
        batch_notifications=args.batch_notifications,
    )
    try:
        asyncio.run(_serve(config))
    except OSError as exc:
        why = exc.strerror or str(exc)
        if isinstance(exc, socket.gaierror) or exc.errno in _CANNOT_LISTEN:
            print(
                f"{prog}: cannot listen on {args.host}:{args.port}: {why}",
                file=sys.stderr,
            )
            return 2
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
