"""The emulator's page: ``GET /_emulator/`` shows each call as a timeline (the bot's requests,
the notifications sent with their delivery result, the operations and their states, the tones,
the far end's doing), live while a test runs.

The page is plain HTML, CSS and JavaScript in ``page/`` (package data, no build step), served
with a strict Content-Security-Policy (its own script and style sheet only; it renders every
value as text). It reads ``GET /_emulator/timeline``: the events since a cursor and every call,
answered at once or, with ``waitS``, as soon as something changed (a long poll: the page asks
again right after each answer). What the feed holds is made in ``_page_feed``.
"""

from __future__ import annotations

import asyncio
import functools
from importlib import resources

import msgspec
from aiohttp import web

from commsgw.emulator._control_calls import Handler
from commsgw.emulator._errors import bad_request, not_found
from commsgw.emulator._page_feed import Cursor, feed
from commsgw.emulator._state import EmulatorState

ASSETS = {"timeline.js": "text/javascript", "timeline.css": "text/css"}
INDEX = "index.html"
MAX_WAIT_S = 30.0
# How often a long poll looks for news: the logs and calls are in memory, a look is cheap.
LOOK_EVERY_S = 0.05
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@functools.cache
def asset(name: str) -> bytes:
    """A file of the page, as shipped with the package."""
    return (resources.files("commsgw.emulator") / "page" / name).read_bytes()


def wait_seconds(raw: str | None) -> float:
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(f"waitS {raw!r} is not a number of seconds.") from None
    if not 0 <= value <= MAX_WAIT_S:
        raise bad_request(f"waitS must be between 0 and {MAX_WAIT_S:g} seconds.")
    return value


class PageRoutes:
    """The page's controls of one emulator instance."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self.handlers: dict[str, Handler] = {
            "page": self._h_page,
            "pageAsset": self._h_asset,
            "timeline": self._h_timeline,
        }

    async def _h_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=asset(INDEX), content_type="text/html", charset="utf-8", headers=HEADERS
        )

    async def _h_asset(self, request: web.Request) -> web.Response:
        name = request.match_info["asset"]
        kind = ASSETS.get(name)
        if kind is None:
            raise not_found(f"The page has no file {name!r}.")
        return web.Response(body=asset(name), content_type=kind, charset="utf-8", headers=HEADERS)

    async def _h_timeline(self, request: web.Request) -> web.Response:
        q = request.query
        unknown = sorted(set(q) - {"since", "waitS"})
        if unknown:
            raise bad_request(f"Unknown query parameter(s): {', '.join(unknown)}.")
        since = q.get("since")
        try:
            cursor = Cursor.parse(since) if since is not None else None
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds(q.get("waitS"))
        while True:
            state = self._state
            body, news = feed(cursor, state.request_log, state.delivery_log, state.calls.values())
            if news or loop.time() >= deadline:
                return web.Response(
                    body=msgspec.json.encode(body),
                    content_type="application/json",
                    headers={"Cache-Control": "no-store"},
                )
            await asyncio.sleep(LOOK_EVERY_S)
