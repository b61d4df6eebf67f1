"""The emulator's page, ``GET /_emulator/``: each call as a live timeline, in a real headless
browser (Debian's chromium through its chromedriver and Selenium), and its feed
``GET /_emulator/timeline`` over HTTPS.

A call is scripted through the emulator (rung over the control API, answered over Graph's,
a prompt played, keys pressed, hung up by the far end); the page shows the bot's requests, the
notifications with their delivery results, the operations with their final states, the tones
and the far end's hang-up, and a step made after it loaded shows up without a reload. Without
chromium the browser tests skip, and fail under COMMSGW_INTEROP_STRICT=1 (CI).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from commsgw.emulator import Emulator
from commsgw.emulator._page_feed import Cursor, is_stale, notification_title, request_title
from commsgw.emulator._state import RequestRecord
from helpers.emulator import CallbackReceiver
from helpers.emulator_calls import (
    SERVICE_HOSTED,
    Graph,
    last_state,
    op_done,
    prompt,
    tone_notes,
    wait_for,
)

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The machine has no network: nothing of chromium's own may try to reach one.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
CALLER = "+14255550123"
# a clientContext that would run script if the page rendered it as HTML
HOSTILE = "menu <img src=x onerror=\"document.title='pwned'\"><b>bold</b>"
WAIT_S = 15.0  # the longest a page condition may take (it is met in well under a second)


def _missing(reason: str) -> None:
    if os.environ.get("COMMSGW_INTEROP_STRICT") == "1":
        pytest.fail(f"COMMSGW_INTEROP_STRICT=1 and {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless chromium, driven by Debian's chromedriver (never a downloaded browser)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            _missing(f"{path} is not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.accept_insecure_certs = True  # the emulator's certificate is from its own CA
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def browser(chromium: Any, emu_graph: tuple[Emulator, Graph]) -> AsyncIterator[Any]:
    """The module's browser, on a blank page again before the test's emulator stops: a page left
    open polls the feed, and a connection it opens while the emulator stops (its TLS handshake
    not done, so no server knows it yet) would be left to the garbage collector."""
    try:
        yield chromium
    finally:
        await asyncio.to_thread(chromium.get, "about:blank")


@pytest.fixture
async def rx() -> AsyncIterator[CallbackReceiver]:
    # the second notification POST is refused once: its retry is delivered
    async with CallbackReceiver(statuses=[202, 500]) as r:
        yield r


# What the page shows for one call, read in one round trip: the rendered text of its header,
# its operations table and each row of its timeline.
_READ_CALL = """
const section = document.querySelector(`section.call[data-call-id="${arguments[0]}"]`);
if (section === null) return null;
const text = (node) => (node === null ? null : node.innerText.trim());
return {
  who: text(section.querySelector(".who")),
  state: text(section.querySelector(".state")),
  facts: text(section.querySelector(".facts")),
  operations: [...section.querySelectorAll("table.operations tbody tr")].map(
    (tr) => [...tr.cells].map((td) => td.innerText.trim())),
  rows: [...section.querySelectorAll("li.event")].map((li) => ({
    kind: li.dataset.kind,
    lane: text(li.querySelector(".lane")),
    what: text(li.querySelector(".what")),
    status: text(li.querySelector(".status")),
  })),
};
"""


_READ_OTHER = """
const section = document.getElementById("other");
if (section.hidden) return null;
return [...section.querySelectorAll("li.event")].map((li) => [
  li.querySelector(".what .title").innerText.trim(),
  li.querySelector(".status").innerText.trim(),
]);
"""


def _other_shows(title: str, status: str) -> Callable[[Any], bool]:
    """A condition: the section of the requests tied to no call shows this one."""

    def condition(driver: Any) -> bool:
        rows = driver.execute_script(_READ_OTHER)
        return rows is not None and [title, status] in rows

    return condition


async def _until(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    """Wait (the driver's own wait, in a thread: the emulator runs on this loop) until
    ``condition(driver)`` is true; its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.02)
    return await asyncio.to_thread(wait.until, condition, what)


def _shown(call_id: str, test: Callable[[dict[str, Any]], bool]) -> Callable[[Any], Any]:
    """A condition: the page shows the call and ``test`` holds for what it shows."""

    def condition(driver: Any) -> Any:
        seen = driver.execute_script(_READ_CALL, call_id)
        return seen if seen is not None and test(seen) else False

    return condition


def _rows(seen: dict[str, Any], lane: str) -> list[dict[str, Any]]:
    return [r for r in seen["rows"] if r["lane"] == lane]


def _has_row(seen: dict[str, Any], lane: str, what: str, status: str | None = None) -> bool:
    return any(
        what in r["what"] and (status is None or r["status"] == status) for r in _rows(seen, lane)
    )


async def _answered_call(graph: Graph, rx: CallbackReceiver) -> str:
    rung = await graph.control("POST", "/calls", {"callbackUri": rx.url, "caller": CALLER})
    assert rung.status_code == 201, rung.text
    call_id: str = rung.json()["id"]
    answer = {"callbackUri": rx.url, "acceptedModalities": ["audio"], "mediaConfig": SERVICE_HOSTED}
    assert (await graph.act(call_id, "answer", answer)).status_code == 202
    await wait_for(lambda: last_state(rx, call_id) == "established")
    return call_id


async def test_the_page_shows_a_scripted_call_and_follows_it_live(
    browser: Any, emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    emu, graph = emu_graph
    call_id = await _answered_call(graph, rx)
    subscribed = await graph.act(call_id, "subscribeToTone", {"clientContext": "tones"})
    assert subscribed.status_code == 200, subscribed.text
    menu = "https://cdn.example.com/menu.wav"
    played = await graph.act(
        call_id, "playPrompt", {"clientContext": HOSTILE, "prompts": [prompt(menu)]}
    )
    assert played.status_code == 200, played.text
    await wait_for(lambda: op_done(rx, call_id, played.json()["id"]))
    await emu.notifications_idle()

    await asyncio.to_thread(browser.get, f"{emu.base_url}/_emulator/")
    title = await asyncio.to_thread(lambda: browser.title)
    seen = await _until(
        browser,
        _shown(
            call_id,
            lambda s: (
                [op[2] for op in s["operations"]] == ["completed", "completed"]
                and _has_row(s, "Graph → bot", "playPrompt completed")
            ),
        ),
        "the page shows the call with its operations done",
    )
    assert seen["who"] == f"incoming p2p call from phone {CALLER}"
    assert seen["state"] == "established"
    assert "tones subscribed" in seen["facts"]
    # the far end rang first; the bot's requests, each with Graph's answer
    assert seen["rows"][0]["lane"] == "far end"
    assert seen["rows"][0]["what"] == f"rings the bot from phone {CALLER}"
    requests = [(r["what"].splitlines()[0], r["status"]) for r in _rows(seen, "bot → Graph")]
    assert requests == [("answer", "202"), ("subscribeToTone", "200"), ("playPrompt", "200")]
    assert any(f"prompts {menu}" in r["what"] for r in _rows(seen, "bot → Graph"))
    # the operations with their final states, and what the hostile clientContext is: text
    kinds = [(op[0], op[1], op[2]) for op in seen["operations"]]
    assert kinds == [
        ("subscribeToTone", "tones", "completed"),
        ("playPrompt", HOSTILE, "completed"),
    ]
    # the notifications with how each was delivered: the refused one, then its retry
    notes = _rows(seen, "Graph → bot")
    assert notes[0]["what"] == f"call created: incoming from phone {CALLER}"
    assert notes[0]["status"] == "delivered 202"
    assert [r["status"] for r in notes[1:3]] == ["refused 500", "delivered 202 (attempt 2)"]
    assert notes[1]["what"] == notes[2]["what"]
    assert _has_row(seen, "Graph → bot", "call updated: established", "delivered 202")
    assert [(r["what"], r["status"]) for r in notes[3:]] == [
        ("call updated: established", "delivered 202"),
        (
            f"playPrompt completed “{HOSTILE}”, completedSuccessfully (200/0 Success.)",
            "delivered 202",
        ),
    ]
    assert len(notes) == len(emu.delivery_log)
    assert (await asyncio.to_thread(browser.find_element, "id", "feed-status")).text == "live"

    # steps made after the page loaded appear in it, in the same document (no reload)
    await asyncio.to_thread(browser.execute_script, "window.sameDocument = true;")
    pressed = await graph.control("POST", f"/calls/{call_id}/tones", {"tones": "1#"})
    assert pressed.status_code == 200, pressed.text
    await wait_for(lambda: len(tone_notes(rx, call_id)) == 2)
    assert (await graph.control("POST", f"/calls/{call_id}/hang-up")).status_code == 204
    seen = await _until(
        browser,
        _shown(call_id, lambda s: _has_row(s, "far end", "the far end hung up", "delivered 202")),
        "the page shows the far end's hang-up",
    )
    far = [r for r in _rows(seen, "far end") if r["kind"] != "ring"]
    assert [(r["what"], r["status"]) for r in far] == [
        ("the caller presses keys: 1#", "200"),
        ("tone tone1 (sequence 1)", "delivered 202"),
        ("tone pound (sequence 2)", "delivered 202"),
        ("the far end hangs up", "204"),
        (
            "call deleted: terminated (200/4521 Call ended by the other participant in "
            "peer-to-peer call.): the far end hung up",
            "delivered 202",
        ),
    ]
    assert "result 200/4521" in seen["facts"] and "the far end hung up" in seen["facts"]
    assert await asyncio.to_thread(browser.execute_script, "return window.sameDocument;") is True
    # nothing of the hostile clientContext ran or became an element
    assert await asyncio.to_thread(lambda: browser.title) == title == "commsgw emulator: calls"
    images = await asyncio.to_thread(browser.execute_script, "return document.images.length;")
    assert images == 0
    # and the page ran without an error (a script error, a policy violation, a failed load)
    logged = await asyncio.to_thread(browser.get_log, "browser")
    assert [e["message"] for e in logged if e["level"] == "SEVERE"] == []


async def test_the_page_starts_over_after_a_reset(
    browser: Any, emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    emu, graph = emu_graph
    first = await _answered_call(graph, rx)
    await asyncio.to_thread(browser.get, f"{emu.base_url}/_emulator/")
    await _until(browser, _shown(first, lambda s: s["state"] == "established"), "the first call")
    await asyncio.to_thread(browser.execute_script, "window.sameDocument = true;")
    # a lost callback: the call ends and nothing tells the bot
    assert (await graph.control("POST", f"/calls/{first}/drop")).status_code == 204
    seen = await _until(
        browser, _shown(first, lambda s: s["state"] == "terminated"), "the dropped call"
    )
    assert "ended without a termination notification" in seen["facts"]
    assert _has_row(seen, "far end", "the call is dropped, without a termination notification")
    assert (await graph.control("POST", "/reset")).status_code == 204
    second = await _answered_call(graph, rx)
    await _until(browser, _shown(second, lambda s: s["state"] == "established"), "the new call")
    gone = await asyncio.to_thread(browser.execute_script, _READ_CALL, first)
    assert gone is None  # the reset's calls left the page with it
    # a bot still asking about the old call: the page shows Graph's 404 for a call it lost
    assert (await graph.get(f"/communications/calls/{first}")).status_code == 404
    seen = await _until(
        browser, _shown(first, lambda s: _has_row(s, "bot → Graph", "get the call", "404")), "404"
    )
    assert seen["who"] == "call not known to the emulator" and seen["operations"] == []
    # a call the bot failed to create has no id: it shows among the requests of no call
    assert (await graph.create({"requestedModalities": ["audio"]})).status_code == 400
    await _until(browser, _other_shows("create a call", "400"), "the failed create")
    assert await asyncio.to_thread(browser.execute_script, "return window.sameDocument;") is True


# ------------------------------------------------------------------------ the feed, over HTTPS


async def _timeline(graph: Graph, **params: str) -> httpx.Response:
    return await graph.control("GET", "/timeline?" + str(httpx.QueryParams(params)))


async def test_the_feed_answers_what_is_new_since_its_cursor(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    emu, graph = emu_graph
    first = await _timeline(graph)
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    body = first.json()
    assert body["events"] == [] and body["calls"] == [] and body["reset"] is False
    call_id = await _answered_call(graph, rx)
    await emu.notifications_idle()
    news = (await _timeline(graph, since=body["cursor"])).json()
    assert [c["id"] for c in news["calls"]] == [call_id]
    kinds = [(e["kind"], e["callId"]) for e in news["events"]]
    assert ("request", call_id) in kinds and ("notification", call_id) in kinds
    answer = next(e for e in news["events"] if e["kind"] == "request")
    assert answer["title"] == "answer" and answer["request"]["path"].endswith("/answer")
    assert [e["at"] for e in news["events"]] == sorted(e["at"] for e in news["events"])
    # nothing new: nothing again (its own reads are not events), and the same calls
    again = (await _timeline(graph, since=news["cursor"])).json()
    assert again["events"] == [] and again["reset"] is False and again["calls"] == news["calls"]
    # a test's control that concerns no call is an event of no call
    armed = await graph.control("POST", "/faults", {"pathPattern": "/never$"})
    assert armed.status_code == 201
    control = (await _timeline(graph, since=again["cursor"])).json()
    assert [
        (e["kind"], e["actor"], e["callId"], e["title"], e["status"]) for e in control["events"]
    ] == [("control", "test", None, "POST /_emulator/faults", 201)]
    again = control

    # a long poll answers when something happens, not at the end of its wait
    waiting = asyncio.create_task(_timeline(graph, since=again["cursor"], waitS="30"))
    assert (await graph.control("POST", f"/calls/{call_id.upper()}/hang-up")).status_code == 204
    woke = (await asyncio.wait_for(waiting, timeout=10)).json()
    assert woke["calls"][0]["state"] == "terminated"
    assert woke["calls"][0]["farEndHungUp"] is True
    # the control names the call as Graph's ids do (lower-case dashed), whatever the URL said
    await emu.notifications_idle()
    woke = (await _timeline(graph, since=again["cursor"])).json()
    hang_up = [e for e in woke["events"] if e["kind"] == "control"]
    assert [(e["actor"], e["callId"], e["title"]) for e in hang_up] == [
        ("farEnd", call_id, "the far end hangs up")
    ]

    # after a reset, an old cursor starts the client over
    assert (await graph.control("POST", "/reset")).status_code == 204
    after = (await _timeline(graph, since=woke["cursor"])).json()
    assert after["reset"] is True and after["calls"] == []


async def test_the_feed_refuses_bad_input(emu_graph: tuple[Emulator, Graph]) -> None:
    _, graph = emu_graph
    for params in ({"since": "nope"}, {"waitS": "x"}, {"waitS": "31"}, {"waitS": "-1"}, {"x": "1"}):
        resp = await _timeline(graph, **params)
        assert resp.status_code == 400, params
        assert resp.json()["error"]["code"] == "BadRequest", params


async def test_the_page_and_its_files_are_served_with_a_strict_policy(
    emu_graph: tuple[Emulator, Graph],
) -> None:
    _, graph = emu_graph
    page = await graph.control("GET", "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "page/timeline.js" in page.text and "page/timeline.css" in page.text
    script = await graph.control("GET", "/page/timeline.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
    style = await graph.control("GET", "/page/timeline.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    missing = await graph.control("GET", "/page/..%2F_page.py")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "itemNotFound"


def test_titles_name_what_a_request_or_a_notification_says() -> None:
    calls = "/v1.0/communications/calls"
    assert request_title("POST", calls, {}) == "create a call"
    assert request_title("POST", f"{calls}/abc/playPrompt", {}) == "playPrompt"
    assert request_title("DELETE", f"{calls}/abc", None) == "hang up (delete the call)"
    assert request_title("GET", f"{calls}/abc/operations/x", None) == "get an operation"
    assert request_title("POST", "/tenant/oauth2/v2.0/token", None) == "token request"
    op = {
        "changeType": "deleted",
        "resourceData": {
            "@odata.type": "#microsoft.graph.recordOperation",
            "status": "completed",
            "clientContext": "msg",
            "completionReason": "stopToneDetected",
            "resultInfo": {"code": 200, "subcode": 0},
        },
    }
    assert notification_title(op) == (
        "recordResponse completed “msg”, stopToneDetected (200/0)",
        False,
    )
    roster = {"changeType": "updated", "resourceData": [{}, {}]}
    assert notification_title(roster) == ("roster updated: 2 participant(s)", False)
    group_end = {
        "changeType": "deleted",
        "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "state": "terminated",
            "resultInfo": {"code": 200, "subcode": 5002},
        },
    }
    assert notification_title(group_end) == (
        "call deleted: terminated (200/5002): the far end hung up",
        True,
    )
    assert notification_title("x") == ("a notification that is not an object", False)


def test_a_cursor_names_its_generation_of_the_logs() -> None:
    def log(*times: float) -> list[RequestRecord]:
        return [RequestRecord("GET", "/v1.0/x", 200, {}, at=t) for t in times]

    read = Cursor(2, 0, 1_000_000, 0, 7)
    assert Cursor.parse(str(read)) == read
    assert not is_stale(read, log(1.0, 2.0, 3.0), [])  # more came since: read on
    assert is_stale(read, log(1.0), [])  # fewer than were read: emptied since
    assert is_stale(read, log(4.0, 5.0, 6.0), [])  # as many again, but a new first entry
    assert not is_stale(Cursor(0, 0, 0, 0, 0), log(4.0), [])  # read nothing: nothing to lose
    for bad in ("", "1.2.3", "1.2.3.4.x", "1.2.3.4.-5", "1.2.3.4.5.6"):
        with pytest.raises(ValueError):
            Cursor.parse(bad)
