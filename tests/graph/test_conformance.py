"""What goes over the wire is what Graph's published v1.0 metadata allows: each RPC driven
through the real gateway (real gRPC, MSAL, HTTPS) with every optional field it can set, every
request the emulator's journal holds checked against the metadata extract; the emulator's
400 for a request the metadata does not allow; and the emulator's own answers and
notifications held to the same metadata."""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from commsgw._graphmeta import check_request, check_value
from commsgw.emulator import Emulator, RequestRecord
from commsgw.server import Gateway
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.emulator_calls import SERVICE_HOSTED, Graph, prompt, target
from helpers.maximal import CASES, USER, Case, invitation, target_of
from helpers.polling import eventually

# Faster than conftest's emulator: rings in 50 ms, media operations of 200 ms.
pytestmark = [pytest.mark.e2e, pytest.mark.emulator_timings(ring_s=0.05, media_op_seconds=0.2)]


@pytest.fixture
async def graph(emulator: Emulator) -> AsyncIterator[Graph]:
    g = Graph(emulator)
    yield g
    await g.aclose()


def _body(record: RequestRecord) -> Any:
    return json.loads(record.body) if record.body.strip() else None


def graph_requests(emulator: Emulator, since: int = 0) -> list[RequestRecord]:
    return [r for r in emulator.request_log[since:] if r.path.startswith("/v1.0/")]


def nonconforming(records: list[RequestRecord]) -> list[str]:
    out = []
    for r in records:
        problems = check_request(r.method, r.path, _body(r))
        if problems or r.status == 400:
            out.append(f"{r.method} {r.path} -> {r.status}: {[str(p) for p in problems]}")
    return out


async def _call_in(emulator: Emulator, gateway: Gateway, stub: Any, needs: str) -> tuple[str, str]:
    """A call in the state the case needs, and a participant of it other than the bot."""
    if needs == "none":
        return "", ""
    if needs == "incoming":
        call_id = emulator.ring(gateway.public_webhook_url)
        await eventually(lambda: emulator.calls[call_id].state == "incoming", what="incoming")
        return call_id, ""
    resp = await stub.CreateCall(
        calls_pb2.CreateCallRequest(targets=[invitation("user", USER)]), timeout=10
    )
    call = emulator.calls[resp.call.id]
    await eventually(lambda: call.state == "established", what="established")
    other = next(p for p in call.participants if p != call.my_participant_id)
    if needs == "held":
        await stub.StartHoldMusic(
            calls_pb2.StartHoldMusicRequest(call_id=call.id, participant_id=other), timeout=10
        )
    return call.id, other


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rpc}-{i}" for i, c in enumerate(CASES)])
async def test_every_request_an_rpc_sends_conforms_to_the_metadata(
    emulator: Emulator, gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, case: Case
) -> None:
    call_id, participant = await _call_in(emulator, gateway, stub, case.needs)
    since = len(emulator.request_log)
    await getattr(stub, case.rpc)(case.make(call_id, participant), timeout=10)
    sent = graph_requests(emulator, since)
    assert [r for r in sent if target_of(r.method, r.path) == case.action], (
        f"{case.rpc} sent no {case.action}"
    )
    assert not nonconforming(graph_requests(emulator)), nonconforming(graph_requests(emulator))


async def test_the_emulator_answers_400_to_what_the_metadata_does_not_allow(
    emulator: Emulator, graph: Graph, tmp_path: pathlib.Path
) -> None:
    call_id = emulator.ring("https://bot.example/api/calls")
    for action, body, where in (
        ("transfer", {"transferTarget": target("user", USER), "clientContext": "c"}, "/clientCo"),
        ("answer", {"callbackUri": "https://bot.example/cb", "mediaConfig": {}}, "/mediaConfig"),
        ("reject", {"reason": "Busy"}, "/reason"),
        ("startHoldMusicNow", {}, "request path"),
    ):
        resp = await graph.act(call_id, action, body)
        assert resp.status_code == 400, (action, resp.text)
        error = resp.json()["error"]
        assert error["code"] == "BadRequest" and where in error["message"]
        assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}
    assert emulator.calls[call_id].state == "incoming"  # none of them acted on the call
    no_token = await graph.http.post(
        f"/communications/calls/{call_id}/reject", json={"reason": "Busy"}
    )
    assert no_token.status_code == 401  # authentication first, as Graph


# What the emulator sends beyond the metadata, knowingly: the state "ringing" while an outgoing
# call's callee is alerted (the contract's CALL_STATE_RINGING), which v1.0's callState enum
# does not have. Kept until it is settled whether Graph v1.0 sends it at all (it would have to
# come after unknownFutureValue, only to clients that opt in); every other difference fails.
BEYOND_THE_METADATA = ("'ringing' is not a member of microsoft.graph.callState",)


def _notifications_conform(emulator: Emulator) -> list[str]:
    out = []
    for attempt in emulator.delivery_log:
        payload = attempt.payload
        out += [f"envelope {v}" for v in check_value(payload, "commsNotifications")]
        for note in payload.get("value", []):
            data = note.get("resourceData")
            kind = "Collection(participant)" if isinstance(data, list) else "commsOperation"
            if isinstance(data, dict) and data.get("@odata.type") == "#microsoft.graph.call":
                kind = "call"
            # a notification's resource is partial (what changed), never of the wrong shape
            out += [f"{note['resourceUrl']} {v}" for v in check_value(data, kind, complete=False)]
    return [p for p in out if not any(known in p for known in BEYOND_THE_METADATA)]


async def test_the_emulators_answers_and_notifications_conform(
    emulator: Emulator, gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, graph: Graph
) -> None:
    call_id, participant = await _call_in(emulator, gateway, stub, "established")
    base = f"/communications/calls/{call_id}"
    answers: list[tuple[httpx.Response, str]] = [
        (await graph.get(base), "call"),
        (await graph.act(call_id, "playPrompt", {"prompts": [prompt()], "clientContext": "p"}),
         "commsOperation"),
        (await graph.act(call_id, "subscribeToTone", {"clientContext": "t"}), "commsOperation"),
        (await graph.act(call_id, "recordResponse", {"maxRecordDurationInSeconds": 1}),
         "commsOperation"),
        (await graph.act(call_id, "sendDtmfTones", {"tones": ["tone1"]}), "commsOperation"),
        (await graph.act(call_id, "updateRecordingStatus", {"status": "recording"}),
         "commsOperation"),
        (await graph.act(call_id, "mute", {}), "commsOperation"),
        (await graph.act(call_id, "unmute", {}), "commsOperation"),
        (await graph.http.post(f"{base}/participants/invite", headers=graph.headers,
                               json={"participants": [target("user", USER[:-1] + "9")]}),
         "commsOperation"),
        (await graph.http.post(f"{base}/participants/{participant}/mute", headers=graph.headers,
                               json={}), "commsOperation"),
        (await graph.get(f"{base}/participants/{participant}"), "participant"),
        (await graph.http.post(f"{base}/participants/{participant}/startHoldMusic",
                               headers=graph.headers, json={"customPrompt": prompt()}),
         "commsOperation"),
        (await graph.http.post(f"{base}/participants/{participant}/stopHoldMusic",
                               headers=graph.headers, json={"clientContext": "s"}),
         "commsOperation"),
    ]  # fmt: skip
    emulator.press_tones(call_id, "1#")
    op_id = answers[1][0].json()["id"]
    answers.append((await graph.get(f"{base}/operations/{op_id}"), "commsOperation"))
    roster = await graph.get(f"{base}/participants")
    problems = [
        f"{r.request.method} {r.request.url.path}: {v}"
        for r, kind in answers
        for v in check_value(r.json(), kind)
    ]
    problems += [
        f"roster {v}" for v in check_value(roster.json()["value"], "Collection(participant)")
    ]
    await stub.HangUpCall(calls_pb2.HangUpCallRequest(call_id=call_id), timeout=10)
    await eventually(lambda: not emulator.calls[call_id].alive, what="ended")
    await emulator.notifications_idle()
    problems += _notifications_conform(emulator)
    assert not problems, "\n".join(problems)
    assert len(emulator.delivery_log) > 5


async def test_created_calls_answer_as_the_metadata_says(graph: Graph) -> None:
    body = {
        "@odata.type": "#microsoft.graph.call",
        "callbackUri": "https://bot.example/api/calls",
        "requestedModalities": ["audio"],
        "mediaConfig": SERVICE_HOSTED,
        "targets": [target("user", USER)],
    }
    resp = await graph.create(body)
    assert resp.status_code == 201, resp.text
    assert check_value(resp.json(), "call") == []
