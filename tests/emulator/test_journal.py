"""The emulator's request journal, request verification and reset, over real HTTPS:
``GET /_emulator/requests`` (filters), ``POST /_emulator/requests/count`` (a pattern with a
body subset) and ``POST /_emulator/reset``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from commsgw.emulator import Emulator
from helpers.emulator import CallbackReceiver
from helpers.emulator_calls import (
    USER_ID,
    Graph,
    call_body,
    last_state,
    prompt,
    target,
    wait_for,
)

pytestmark = pytest.mark.e2e


async def _journal(graph: Graph, **params: str) -> list[dict[str, Any]]:
    resp = await graph.control("GET", "/requests?" + httpx.QueryParams(params).__str__())
    assert resp.status_code == 200, resp.text
    value: list[dict[str, Any]] = resp.json()["value"]
    return value


async def _count(graph: Graph, pattern: dict[str, Any]) -> int:
    resp = await graph.control("POST", "/requests/count", pattern)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["count"] == len(data["requests"])
    count: int = data["count"]
    return count


async def _established_call(graph: Graph, rx: CallbackReceiver) -> str:
    call_id = await graph.create_ok(call_body(rx.url, targets=[target("user", USER_ID)]))
    await wait_for(lambda: last_state(rx, call_id) == "established")
    return call_id


async def test_the_journal_lists_every_graph_request_with_its_parsed_body(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    emu, graph = emu_graph
    call_id = await _established_call(graph, rx)
    play = {"clientContext": "menu", "prompts": [prompt("https://cdn.example.com/menu.wav")]}
    assert (await graph.act(call_id, "playPrompt", play)).status_code == 200
    got = await graph.http.get(
        f"/communications/calls/{call_id}", params={"$select": "state"}, headers=graph.headers
    )
    assert got.status_code == 200
    await graph.control("GET", "/calls")  # a control: not in the journal
    journal = await _journal(graph)
    assert [(e["method"], e["path"].rsplit("/", 1)[-1]) for e in journal] == [
        ("POST", "calls"),
        ("POST", "playPrompt"),
        ("GET", call_id),
    ]
    create, played, read = journal
    assert create["body"] == call_body(rx.url, targets=[target("user", USER_ID)])
    assert create["status"] == 201 and create["callId"] == call_id  # from its Location
    assert create["headers"]["authorization"] == "Bearer"  # the scheme, never the token
    assert create["headers"]["content-type"] == "application/json"
    assert played["body"] == play and played["callId"] == call_id and played["status"] == 200
    assert read["query"] == {"$select": "state"} and read["body"] is None
    times = [dt.datetime.fromisoformat(e["time"]) for e in journal]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    assert all(e["faultId"] is None for e in journal)
    # the identity platform's requests are journaled, without their body (secrets)
    token = await graph.http.post(
        f"{emu.authority()}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emu.config.client_id,
            "client_secret": emu.config.client_secret,
            "scope": emu.graph_scope,
        },
    )
    assert token.status_code == 200, token.text
    last = (await _journal(graph))[-1]
    assert last["path"].endswith("/oauth2/v2.0/token") and last["body"] is None


async def test_the_journal_filters_by_path_method_and_call(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    _, graph = emu_graph
    first, second = await _established_call(graph, rx), await _established_call(graph, rx)
    for call_id in (first, second, first):
        assert (await graph.act(call_id, "playPrompt", {"prompts": [prompt()]})).status_code == 200
    assert (await graph.get(f"/communications/calls/{second}")).status_code == 200
    plays = await _journal(graph, path="/playPrompt$")
    assert [e["callId"] for e in plays] == [first, second, first]
    assert {e["method"] for e in await _journal(graph, method="get")} == {"GET"}
    of_first = await _journal(graph, callId=first.upper())
    assert [e["path"].rsplit("/", 1)[-1] for e in of_first] == ["calls", "playPrompt", "playPrompt"]
    both = await _journal(graph, callId=second, method="POST", path="/playPrompt$")
    assert len(both) == 1
    # bad filters are refused, not ignored
    for query in ("path=(", "callId=not-a-call", "state=x"):
        resp = await graph.control("GET", f"/requests?{query}")
        assert resp.status_code == 400, query
        assert resp.json()["error"]["code"] == "BadRequest"


async def test_count_verifies_requests_by_pattern_and_body_subset(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    _, graph = emu_graph
    call_id = await _established_call(graph, rx)
    menu = prompt("https://cdn.example.com/menu.wav")
    await graph.act(call_id, "playPrompt", {"clientContext": "menu", "prompts": [menu]})
    await graph.act(call_id, "playPrompt", {"clientContext": "bye", "prompts": [prompt()]})
    await graph.act(call_id, "subscribeToTone", {"clientContext": "tones"})
    plays = {"method": "POST", "pathPattern": "/playPrompt$"}
    assert await _count(graph, plays) == 2
    assert await _count(graph, {**plays, "callId": call_id, "status": 200}) == 2
    assert await _count(graph, {**plays, "status": 404}) == 0
    menu_uri = {"prompts": [{"mediaInfo": {"uri": "https://cdn.example.com/menu.wav"}}]}
    assert await _count(graph, {**plays, "body": menu_uri}) == 1
    assert await _count(graph, {**plays, "body": {"clientContext": "bye"}}) == 1
    assert await _count(graph, {**plays, "body": {"clientContext": "nope"}}) == 0
    assert await _count(graph, {"body": {"clientContext": "tones"}}) == 1
    assert await _count(graph, {}) == 4  # the create, two prompts, the subscription
    for bad in ({"pathPattern": "("}, {"callId": "x"}, {"bodyy": {}}, {"status": "200"}):
        resp = await graph.control("POST", "/requests/count", bad)
        assert resp.status_code == 400, bad
        assert resp.json()["error"]["code"] == "BadRequest"


async def test_a_fault_is_journaled_with_its_id(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    _, graph = emu_graph
    added = await graph.control(
        "POST", "/faults", {"pathPattern": "/calls$", "status": 429, "retryAfter": 1}
    )
    fault_id = added.json()["ids"][0]
    assert (
        await graph.create(call_body(rx.url, targets=[target("user", USER_ID)]))
    ).status_code == 429
    [entry] = await _journal(graph)
    assert entry["status"] == 429 and entry["faultId"] == fault_id
    assert entry["headers"]["retry-after"] == "1"


async def test_reset_clears_calls_journal_faults_deliveries_and_far_end_settings(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    emu, graph = emu_graph
    declining = "5e0b2a5e-7f61-4d39-a0a3-1d3b7f0c9d11"
    assert (
        await graph.control("PUT", f"/callees/{declining}", {"response": "decline"})
    ).status_code == 200
    call_id = await _established_call(graph, rx)
    rung = (await graph.control("POST", "/calls", {"callbackUri": rx.url})).json()["id"]
    await graph.control("PUT", f"/calls/{rung}/caller", {"speechAfterS": None})
    await graph.control("POST", "/faults", {"pathPattern": "/never$", "count": -1})
    await wait_for(lambda: emu.delivery_log)
    assert await _journal(graph)
    received = len(rx.received)

    resp = await graph.control("POST", "/reset")
    assert resp.status_code == 204

    assert (await graph.control("GET", "/calls")).json()["value"] == []
    assert (await graph.control("GET", "/faults")).json()["faults"] == []
    assert (await graph.control("GET", "/deliveries")).json()["value"] == []
    assert await _journal(graph) == []
    for old in (call_id, rung):  # ended without a word to the bot
        assert (await graph.get(f"/communications/calls/{old}")).status_code == 404
        assert (await graph.control("GET", f"/calls/{old}")).status_code == 404
    # the callee declined before the reset; now it answers, as everyone does by default
    again = await graph.create_ok(call_body(rx.url, targets=[target("user", declining)]))
    await wait_for(lambda: last_state(rx, again) == "established")
    await emu.notifications_idle()
    urls = [str(n.get("resourceUrl", "")) for r in rx.received[received:] for n in r.body["value"]]
    assert urls and all(again in url for url in urls)  # nothing more about the old calls
    journal = await _journal(graph)  # since the reset: the two reads that failed, the create
    assert [(e["method"], e["callId"], e["status"]) for e in journal] == [
        ("GET", call_id, 404),
        ("GET", rung, 404),
        ("POST", again, 201),
    ]
