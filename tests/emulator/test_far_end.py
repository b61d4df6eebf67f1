"""The far end of the emulator's calls, scripted over its control API (real HTTPS): ring the bot
(from a phone, a user, into a meeting), press keys with timing, say something and fall silent,
hang up, drop a call without a termination notification, mis-deliver notifications (twice, late,
out of order), and a per-call prompt duration (to cancel a prompt while it plays)."""

from __future__ import annotations

from typing import Any

import pytest

from commsgw.emulator import Emulator
from helpers.emulator import CallbackReceiver
from helpers.emulator_calls import (
    PHONE,
    SERVICE_HOSTED,
    USER_2,
    Graph,
    last_state,
    of_call,
    op_done,
    prompt,
    terminated,
    tone_notes,
    wait_for,
)
from helpers.polling import eventually

pytestmark = pytest.mark.e2e

ANSWER = {"acceptedModalities": ["audio"], "mediaConfig": SERVICE_HOSTED}
CHAT = {"threadId": "19:meeting_abc@thread.v2", "messageId": "0"}
MEETING = {
    "@odata.type": "#microsoft.graph.organizerMeetingInfo",
    "organizer": {"user": {"id": USER_2}},
}


async def _ring(graph: Graph, rx: CallbackReceiver, **body: Any) -> str:
    resp = await graph.control("POST", "/calls", {"callbackUri": rx.url, **body})
    assert resp.status_code == 201, resp.text
    call_id: str = resp.json()["id"]
    return call_id


async def _answered(graph: Graph, rx: CallbackReceiver, **ring: Any) -> str:
    call_id = await _ring(graph, rx, **ring)
    answer = {"callbackUri": rx.url, **ANSWER}  # Graph requires both callbackUri and mediaConfig
    assert (await graph.act(call_id, "answer", answer)).status_code == 202
    await wait_for(lambda: last_state(rx, call_id) == "established")
    return call_id


def _ops(rx: CallbackReceiver, call_id: str, kind: str) -> list[dict[str, Any]]:
    return [
        n
        for n in of_call(rx, call_id)
        if n.get("resourceData", {}).get("@odata.type") == f"#microsoft.graph.{kind}"
    ]


async def test_ring_from_a_phone_a_user_and_into_a_meeting(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    _, graph = emu_graph
    phone = await _ring(graph, rx, caller=PHONE)
    user = await _ring(graph, rx, caller=USER_2, callerName="Test User")
    meeting = await _ring(graph, rx, caller=USER_2, chatInfo=CHAT, meetingInfo=MEETING)
    created = {c: (await wait_for(lambda c=c: of_call(rx, c)))[0] for c in (phone, user, meeting)}
    assert all(n["changeType"] == "created" for n in created.values())
    data = {c: n["resourceData"] for c, n in created.items()}
    assert data[phone]["source"]["identity"]["phone"]["id"] == PHONE
    assert data[user]["source"]["identity"]["user"]["displayName"] == "Test User"
    assert data[meeting]["chatInfo"] == CHAT and data[meeting]["meetingInfo"] == MEETING
    for c in (phone, user, meeting):
        got = await graph.get(f"/communications/calls/{c}")
        assert got.status_code == 200 and got.json()["state"] == "incoming"


async def test_tones_are_pressed_at_their_times_in_order(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    _, graph = emu_graph
    call_id = await _answered(graph, rx)
    assert (await graph.act(call_id, "subscribeToTone", {})).status_code == 200
    resp = await graph.control(
        "POST", f"/calls/{call_id}/tones", {"tones": "1#", "afterS": 0.1, "intervalS": 0.2}
    )
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"dueS": [pytest.approx(0.1), pytest.approx(0.3)]}
    notes = await wait_for(lambda: len(tone_notes(rx, call_id)) == 2 and tone_notes(rx, call_id))
    infos = [n["resourceData"]["toneInfo"] for n in notes]
    assert [(i["tone"], i["sequenceId"]) for i in infos] == [("tone1", 1), ("pound", 2)]
    # at once (no timing): the sequence ids in the answer
    now = await graph.control("POST", f"/calls/{call_id}/tones", {"tones": ["tone5"]})
    assert now.status_code == 200 and now.json() == {"sequenceIds": [3]}
    bad = await graph.control("POST", f"/calls/{call_id}/tones", {"tones": "1", "afterS": -1})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"


async def test_the_caller_says_something_then_falls_silent(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    _, graph = emu_graph
    call_id = await _answered(graph, rx)
    said = await graph.control(
        "PUT", f"/calls/{call_id}/caller", {"speechAfterS": 0, "speechS": 0.2}
    )
    assert said.status_code == 200
    record = {"maxSilenceTimeoutInSeconds": 1, "playBeep": False, "maxRecordDurationInSeconds": 30}
    op = (await graph.act(call_id, "recordResponse", record)).json()
    done = await wait_for(lambda: op_done(rx, call_id, op["id"]))
    assert (done["status"], done["completionReason"]) == ("completed", "maxSilenceTimeout")
    assert done["recordingLocation"] and done["recordingAccessToken"]


async def test_the_far_end_hangs_up(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    _, graph = emu_graph
    call_id = await _answered(graph, rx)
    assert (await graph.control("POST", f"/calls/{call_id}/hang-up")).status_code == 204
    end = await wait_for(lambda: terminated(rx, call_id))
    info = end["resultInfo"]
    assert (info["code"], info["subcode"]) == (200, 4521)
    assert (await graph.get(f"/communications/calls/{call_id}")).status_code == 404


async def test_a_dropped_call_ends_without_a_termination_notification(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    emu, graph = emu_graph
    call_id = await _answered(graph, rx)
    await emu.notifications_idle()
    before = len(of_call(rx, call_id))
    assert (await graph.control("POST", f"/calls/{call_id}/drop")).status_code == 204
    assert (await graph.get(f"/communications/calls/{call_id}")).status_code == 404
    assert (await graph.act(call_id, "playPrompt", {"prompts": [prompt()]})).status_code == 404
    assert (await graph.delete(f"/communications/calls/{call_id}")).status_code == 404
    snapshot = (await graph.control("GET", f"/calls/{call_id}")).json()
    assert snapshot["state"] == "terminated"
    await emu.notifications_idle()
    assert len(of_call(rx, call_id)) == before and terminated(rx, call_id) is None
    again = await graph.control("POST", f"/calls/{call_id}/drop")
    assert again.status_code == 404 and again.json()["error"]["code"] == "itemNotFound"


PLAYED = {"resourceData": {"@odata.type": "#microsoft.graph.playPromptOperation"}}


async def test_a_notification_delivered_twice(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    emu, graph = emu_graph
    call_id = await _answered(graph, rx)
    fault = {"kind": "duplicate", "match": PLAYED}
    armed = await graph.control("POST", f"/calls/{call_id}/delivery-faults", fault)
    assert armed.status_code == 201, armed.text
    assert armed.json()["deliveryFaults"] == [{**fault, "count": 1, "delayS": 1.0}]
    assert (await graph.act(call_id, "playPrompt", {"prompts": [prompt()]})).status_code == 200
    assert (await graph.act(call_id, "playPrompt", {"prompts": [prompt()]})).status_code == 200
    await wait_for(lambda: len(_ops(rx, call_id, "playPromptOperation")) == 3)
    await emu.notifications_idle()
    first, twice, other = _ops(rx, call_id, "playPromptOperation")
    assert first == twice and first["resourceData"]["id"] != other["resourceData"]["id"]
    kinds = (await graph.control("GET", f"/deliveries?callId={call_id}")).json()["value"]
    assert [d["misdelivery"] for d in kinds].count("duplicate") == 1


async def test_a_notification_delivered_late_and_one_out_of_order(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    emu, graph = emu_graph
    late, swapped = await _answered(graph, rx), await _answered(graph, rx)
    faults = {late: {"kind": "late", "delayS": 1.0, "match": PLAYED}}
    faults[swapped] = {"kind": "outOfOrder", "match": PLAYED}
    for call_id, fault in faults.items():
        resp = await graph.control("POST", f"/calls/{call_id}/delivery-faults", fault)
        assert resp.status_code == 201, resp.text
        assert (await graph.act(call_id, "playPrompt", {"prompts": [prompt()]})).status_code == 200
        snapshot = f"/calls/{call_id}"

        async def completed(snapshot: str = snapshot) -> bool:
            ops = (await graph.control("GET", snapshot)).json()["operations"]
            return bool(ops) and ops[0]["status"] == "completed"

        await eventually(completed)
        assert (await graph.control("POST", f"/calls/{call_id}/hang-up")).status_code == 204
    await emu.notifications_idle()
    for call_id in (late, swapped):
        # the prompt's completion arrives after the call's end, which happened after it
        kinds = [n["resourceData"]["@odata.type"] for n in of_call(rx, call_id)[-2:]]
        assert kinds == ["#microsoft.graph.call", "#microsoft.graph.playPromptOperation"]
        assert terminated(rx, call_id) is not None
        delivered = (await graph.control("GET", f"/deliveries?callId={call_id}")).json()["value"]
        assert delivered[-1]["misdelivery"] == faults[call_id]["kind"]


async def test_delivery_faults_refuse_bad_input(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    _, graph = emu_graph
    call_id = await _ring(graph, rx)
    for bad in ({"kind": "twice"}, {"kind": "late", "count": 0}, {"kind": "late", "delayS": -1}):
        resp = await graph.control("POST", f"/calls/{call_id}/delivery-faults", bad)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "BadRequest", bad
    unknown = "0fe0623f-d628-42ed-b4bd-8ac290072cc5"
    resp = await graph.control("POST", f"/calls/{unknown}/delivery-faults", {"kind": "duplicate"})
    assert resp.status_code == 404


async def test_a_long_prompt_can_be_cancelled_while_it_plays(
    emu_graph: tuple[Emulator, Graph], rx: CallbackReceiver
) -> None:
    emu, graph = emu_graph
    call_id = await _answered(graph, rx, promptS=60)
    assert (await graph.control("GET", f"/calls/{call_id}")).json()["promptS"] == 60
    menu = (await graph.act(call_id, "playPrompt", {"prompts": [prompt()]})).json()
    await wait_for(lambda: emu.calls[call_id].running is not None)
    assert (await graph.act(call_id, "cancelMediaProcessing", {})).status_code == 200
    done = await wait_for(lambda: op_done(rx, call_id, menu["id"]))
    assert (done["status"], done["completionReason"]) == ("failed", "mediaOperationCanceled")
    # shorter from now on: the next prompt plays to its end
    short = await graph.control("PUT", f"/calls/{call_id}/media", {"promptS": 0.01})
    assert short.status_code == 200 and short.json() == {"promptS": 0.01}
    bye = (await graph.act(call_id, "playPrompt", {"prompts": [prompt(), prompt()]})).json()
    done = await wait_for(lambda: op_done(rx, call_id, bye["id"]))
    assert done["completionReason"] == "completedSuccessfully"
    bad = await graph.control("PUT", f"/calls/{call_id}/media", {"promptS": -1})
    assert bad.status_code == 400
