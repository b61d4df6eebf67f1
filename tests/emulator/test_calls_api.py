"""The emulator's whole calls API: call lifecycle (outgoing, incoming, transfer, keepAlive),
media (prompts, recordings and the caller model, tones), participants, operations, errors and
faults, over real HTTPS with notifications to a real callback receiver."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from commsgw.emulator import Emulator, Fault
from helpers.emulator import CallbackReceiver, client_ssl_context
from helpers.emulator_calls import (
    APP_INSTANCE,
    PHONE,
    SERVICE_HOSTED,
    USER_2,
    USER_3,
    USER_ID,
    Graph,
    call_body,
    emulator_and_graph,
    identity,
    last_state,
    of_call,
    of_kind,
    op_done,
    prompt,
    pstn_source,
    states,
    target,
    terminated,
    tone_notes,
    wait_for,
    wav_seconds,
)

FAST: dict[str, Any] = {
    "media_op_seconds": 0.05,
    "establish_delay_s": 0.02,
    "ring_s": 0.05,
    "ring_timeout_s": 0.3,
    "notify_terminating": True,
}
ENDED = ("deleted", "terminated")


# An answer Graph's metadata allows (callbackUri and mediaConfig are required parameters).
ANSWER = {"callbackUri": "https://bot.contoso.com/api/calls", "mediaConfig": SERVICE_HOSTED}


@pytest.fixture
async def emu_graph(tmp_path: pathlib.Path) -> AsyncIterator[tuple[Emulator, Graph]]:
    async with emulator_and_graph(tmp_path, **FAST) as pair:
        yield pair


@pytest.fixture
def emu(emu_graph: tuple[Emulator, Graph]) -> Emulator:
    return emu_graph[0]


@pytest.fixture
def graph(emu_graph: tuple[Emulator, Graph]) -> Graph:
    return emu_graph[1]


@pytest.fixture
async def rx() -> AsyncIterator[CallbackReceiver]:
    async with CallbackReceiver() as r:
        yield r


async def _established(graph: Graph, rx: CallbackReceiver, body: dict[str, Any]) -> str:
    call_id = await graph.create_ok(body)
    await wait_for(lambda: last_state(rx, call_id) == "established")
    return call_id


async def _p2p(graph: Graph, rx: CallbackReceiver) -> str:
    return await _established(graph, rx, call_body(rx.url, targets=[target("user", USER_ID)]))


def bot_muted(rx: CallbackReceiver, call_id: str) -> bool | None:
    """isMuted of the bot in the call's last roster update (None before any)."""
    rosters = of_kind(rx, call_id, "/participants")
    if not rosters:
        return None
    assert rosters[-1]["resourceUrl"] == f"/communications/calls/{call_id}/participants"
    muted: bool = rosters[-1]["resourceData"][0]["isMuted"]
    return muted


def _assert_graph_error(resp: httpx.Response, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["message"] and err["innerError"]["request-id"] == resp.headers["request-id"]
    if code is not None:
        assert err["code"] == code


# --------------------------------------------------------------------------- outgoing calls


async def test_call_to_a_teams_user_rings_then_is_established(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    resp = await graph.create(call_body(rx.url, targets=[target("user", USER_ID, hidden=False)]))
    assert resp.status_code == 201, resp.text
    call = resp.json()
    call_id = call["id"]
    assert resp.headers["Location"] == f"{emu.graph_url}/communications/calls/{call_id}"
    assert call["@odata.context"].endswith("$metadata#app/calls/$entity")
    assert call["state"] == "establishing" and call["direction"] == "outgoing"
    assert call["myParticipantId"] and call["callChainId"] and call["callRoutes"] == []
    assert call["targets"][0]["identity"]["user"]["id"] == USER_ID
    assert call["tenantId"] == emu.config.tenant_id
    await wait_for(lambda: last_state(rx, call_id) == "established")
    assert states(rx, call_id) == [
        ("updated", "establishing"),
        ("updated", "ringing"),
        ("updated", "established"),
    ]
    assert not of_kind(rx, call_id, "/participants")  # peer-to-peer: call states only
    got = await graph.get(f"/communications/calls/{call_id}")
    assert got.status_code == 200 and got.json()["state"] == "established"
    roster = (await graph.get(f"/communications/calls/{call_id}/participants")).json()
    assert roster["@odata.context"].endswith(f"calls('{call_id}')/participants")
    ids = [p["info"]["identity"] for p in roster["value"]]
    assert ids[0]["application"]["id"] == emu.config.client_id
    assert ids[1]["user"]["id"] == USER_ID
    bot = roster["value"][0]
    assert (
        bot["id"] == call["myParticipantId"]
        and bot["@odata.type"] == "#microsoft.graph.participant"
    )
    assert bot["mediaStreams"][0]["mediaType"] == "audio" and bot["isMuted"] is False


async def test_call_to_a_phone_number_goes_through_an_application_instance(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    phone = call_body(rx.url, targets=[target("phone", PHONE)], tenantId=emu.config.tenant_id)
    _assert_graph_error(await graph.create(phone), 400, "BadRequest")  # no source
    call_id = await _established(graph, rx, {**phone, "source": pstn_source()})
    roster = (await graph.get(f"/communications/calls/{call_id}/participants")).json()["value"]
    assert roster[0]["info"]["identity"]["applicationInstance"]["id"] == APP_INSTANCE
    assert roster[1]["info"]["identity"]["phone"]["id"] == PHONE


async def test_callees_that_decline_are_busy_or_do_not_answer(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    emu.set_callee(USER_2, "decline")
    resp = await graph.control("PUT", f"/callees/{USER_3}", {"response": "busy", "ringS": 0.01})
    assert resp.status_code == 200 and resp.json() == {"response": "busy", "ringS": 0.01}
    emu.set_callee(PHONE, "noAnswer")
    declined = await graph.create_ok(call_body(rx.url, targets=[target("user", USER_2)]))
    busy = await graph.create_ok(call_body(rx.url, targets=[target("user", USER_3)]))
    silent = await graph.create_ok(
        call_body(rx.url, targets=[target("phone", PHONE)], source=pstn_source())
    )
    for call_id, code, subcode in ((declined, 603, 0), (busy, 486, 0), (silent, 408, 10057)):
        data = await wait_for(lambda c=call_id: terminated(rx, c))
        assert data["state"] == "terminated"
        assert (data["resultInfo"]["code"], data["resultInfo"]["subcode"]) == (code, subcode)
        assert states(rx, call_id) == [
            ("updated", "establishing"),
            ("updated", "ringing"),
            ENDED,
        ]
    assert (await graph.get(f"/communications/calls/{declined}")).status_code == 404
    bad = await graph.control("PUT", f"/callees/{USER_2}", {"response": "maybe"})
    _assert_graph_error(bad, 400)


async def test_joining_a_meeting_sends_its_roster(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    by_id = call_body(
        rx.url,
        meetingInfo={
            "@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo",
            "joinMeetingId": "1234567",
            "passcode": "psw123",
        },
        tenantId=emu.config.tenant_id,
    )
    resp = await graph.create(by_id)
    assert resp.status_code == 201, resp.text
    call = resp.json()
    assert call["targets"] == [] and call["chatInfo"]["threadId"].startswith("19:meeting_")
    await wait_for(lambda: of_kind(rx, call["id"], "/participants"))
    assert states(rx, call["id"]) == [("updated", "establishing"), ("updated", "established")]
    roster = of_kind(rx, call["id"], "/participants")[0]
    assert roster["changeType"] == "updated" and isinstance(roster["resourceData"], list)

    organizer = {
        "@odata.type": "#microsoft.graph.organizerMeetingInfo",
        "organizer": identity("user", USER_2, "Bob"),
        "allowConversationWithoutHost": True,
    }
    _assert_graph_error(await graph.create(call_body(rx.url, meetingInfo=organizer)), 400)
    chat = {"@odata.type": "#microsoft.graph.chatInfo", "threadId": "19:meeting_x@thread.v2"}
    with_chat = call_body(rx.url, meetingInfo=organizer, chatInfo=chat)
    call_id = await _established(graph, rx, with_chat)
    await wait_for(lambda: of_kind(rx, call_id, "/participants"))
    people = of_kind(rx, call_id, "/participants")[0]["resourceData"]
    assert [p["info"]["identity"].get("user", {}).get("id") for p in people] == [None, USER_2]


async def test_a_call_without_targets_is_a_new_group_call(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = await graph.create_ok({"@odata.type": "#microsoft.graph.call", "callbackUri": rx.url})
    await wait_for(lambda: last_state(rx, call_id) == "established")
    await emu.notifications_idle()
    assert states(rx, call_id) == [("updated", "establishing"), ("updated", "established")]
    assert len(of_call(rx, call_id)) == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"callbackUri": "http://bot.contoso.com/cb"},  # https only (http on loopback)
        {"callbackUri": "not a url"},
        {"targets": [target("user", f"{USER_ID[:-1]}{i}") for i in range(6)]},
        {"targets": [target("user", "john")]},
        {"targets": [target("phone", "12345")], "source": pstn_source()},
        {"targets": [{"identity": {}}]},
        {"requestedModalities": ["smell"]},
        {"mediaConfig": {"@odata.type": "#microsoft.graph.mediaConfig"}},
        {"chatInfo": {"threadId": "19:x"}},
        {"meetingInfo": {"@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo"}},
        {"mediaConfig": {**call_body("x")["mediaConfig"], "preFetchMedia": [{"uri": "ftp://x"}]}},
    ],
)
async def test_create_call_refuses_invalid_bodies(
    graph: Graph, rx: CallbackReceiver, fields: dict[str, Any]
) -> None:
    _assert_graph_error(await graph.create(call_body(rx.url, **fields)), 400, "BadRequest")


async def test_hang_up_sends_terminating_then_terminated(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = await _p2p(graph, rx)
    assert (await graph.delete(f"/communications/calls/{call_id}")).status_code == 204
    data = await wait_for(lambda: terminated(rx, call_id))
    assert states(rx, call_id)[-2:] == [("updated", "terminating"), ENDED]
    assert data["resultInfo"]["code"] == 200 and data["resultInfo"]["subcode"] == 5001
    for resp in (
        await graph.act(call_id, "keepAlive"),
        await graph.get(f"/communications/calls/{call_id}"),
        await graph.delete(f"/communications/calls/{call_id}"),
        await graph.act(call_id, "mute"),
    ):
        _assert_graph_error(resp, 404, "itemNotFound")


async def test_the_other_party_hangs_up(emu: Emulator, graph: Graph, rx: CallbackReceiver) -> None:
    p2p = await _p2p(graph, rx)
    group = await _established(graph, rx, call_body(rx.url))
    emu.remote_hang_up(p2p)
    assert (await graph.control("POST", f"/calls/{group}/hang-up")).status_code == 204
    for call_id, subcode in ((p2p, 4521), (group, 5002)):
        data = await wait_for(lambda c=call_id: terminated(rx, c))
        assert data["resultInfo"]["subcode"] == subcode
    _assert_graph_error(await graph.control("POST", f"/calls/{p2p}/hang-up"), 404)
    with pytest.raises(LookupError):
        emu.remote_hang_up(p2p)


# --------------------------------------------------------------------------- incoming calls


async def test_incoming_call_is_answered_and_moves_to_the_new_callback(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    async with CallbackReceiver() as rx2:
        call_id = emu.ring(rx.url, caller=PHONE)
        created = (await wait_for(lambda: of_call(rx, call_id)))[0]
        assert created["changeType"] == "created"
        data = created["resourceData"]
        assert data["@odata.type"] == "#microsoft.graph.call"
        assert data["state"] == "incoming" and data["direction"] == "incoming"
        assert data["source"]["identity"]["phone"]["id"] == PHONE
        app = data["targets"][0]["identity"]["application"]
        assert app["id"] == emu.config.client_id
        assert data["tenantId"] == emu.config.tenant_id and data["myParticipantId"]
        assert data["callbackUri"] == rx.url
        got = (await graph.get(f"/communications/calls/{call_id}")).json()
        assert got["state"] == "incoming"
        _assert_graph_error(await graph.act(call_id, "playPrompt", {"prompts": [prompt()]}), 409)
        _assert_graph_error(await graph.act(call_id, "answer", {"callbackUri": rx2.url}), 400)
        answer = {
            "callbackUri": rx2.url,
            "acceptedModalities": ["audio"],
            "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
        }
        resp = await graph.act(call_id, "answer", answer)
        assert resp.status_code == 202 and resp.content == b""
        await wait_for(lambda: last_state(rx2, call_id) == "established")
        assert states(rx2, call_id) == [("updated", "establishing"), ("updated", "established")]
        assert len(of_call(rx, call_id)) == 1  # nothing more to the old callback
        _assert_graph_error(await graph.act(call_id, "answer", answer), 409, "Conflict")
        _assert_graph_error(await graph.act(call_id, "reject", {"reason": "none"}), 409)
        got = (await graph.get(f"/communications/calls/{call_id}")).json()
        assert got["state"] == "established" and got["callbackUri"] == rx2.url


async def test_incoming_calls_from_users_to_an_application_instance(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    chat = {"threadId": "19:meeting_abc@thread.v2", "messageId": "0"}
    call_id = emu.ring(
        rx.url, caller=USER_2, caller_name="Test User", target=APP_INSTANCE, chat_info=chat
    )
    data = (await wait_for(lambda: of_call(rx, call_id)))[0]["resourceData"]
    assert data["source"]["identity"]["user"] == {
        "@odata.type": "#microsoft.graph.identity",
        "id": USER_2,
        "displayName": "Test User",
        "tenantId": emu.config.tenant_id,
    }
    assert data["targets"][0]["identity"]["applicationInstance"]["id"] == APP_INSTANCE
    assert data["chatInfo"] == chat
    with pytest.raises(ValueError):
        emu.ring(rx.url, caller="someone")
    with pytest.raises(ValueError):
        emu.ring("http://bot.contoso.com/cb")


async def test_reject_takes_the_metadata_s_reasons_and_ends_the_call(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    first, second = emu.ring(rx.url), emu.ring(rx.url)
    _assert_graph_error(await graph.act(first, "reject", {"reason": "tired"}), 400)
    _assert_graph_error(
        await graph.act(first, "reject", {"reason": "busy", "callbackUri": "http://x.com/"}), 400
    )
    # rejectReason's members by name: Graph's metadata has no "Busy" or "FORBIDDEN"
    _assert_graph_error(await graph.act(first, "reject", {"reason": "Busy"}), 400)
    assert (await graph.act(first, "reject", {"reason": "busy"})).status_code == 202
    assert (await graph.act(second, "reject", {"reason": "forbidden"})).status_code == 202
    for call_id in (first, second):
        data = await wait_for(lambda c=call_id: terminated(rx, c))
        assert data == {
            "@odata.type": "#microsoft.graph.call",
            "@odata.id": f"/communications/calls/{call_id}",
        }  # the call-reject example: no state at all
    _assert_graph_error(await graph.act(first, "answer", ANSWER), 404)


async def test_an_incoming_call_nobody_answers_is_dropped(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = emu.ring(rx.url, answer_window_s=0.2)
    data = await wait_for(lambda: terminated(rx, call_id))
    assert data["state"] == "terminated"
    assert (data["resultInfo"]["code"], data["resultInfo"]["subcode"]) == (408, 1106)
    assert states(rx, call_id) == [("created", "incoming"), ENDED]
    _assert_graph_error(await graph.act(call_id, "answer", ANSWER), 404)


async def test_redirect_rings_the_targets_then_ends_the_call_for_the_bot(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = emu.ring(rx.url)
    many = [target("user", f"{USER_ID[:-2]}{i:02d}") for i in range(26)]
    for body in (
        {"targets": []},
        {"targets": many},
        {"targets": [target("user", USER_2)], "timeout": 14},
        {"targets": [target("user", USER_2)], "timeout": 91},
        {"targets": [target("phone", "0800")]},
    ):
        _assert_graph_error(await graph.act(call_id, "redirect", body), 400)
    body = {"targets": many[:25], "timeout": 15, "callbackUri": rx.url}
    assert (await graph.act(call_id, "redirect", body)).status_code == 202
    data = await wait_for(lambda: terminated(rx, call_id))
    assert data["state"] == "terminated" and data["direction"] == "incoming"
    assert data["answeredBy"]["identity"]["user"]["id"] == many[0]["identity"]["user"]["id"]
    assert data["source"] and data["targets"]  # the whole call, as in the redirect examples

    emu.set_callee(USER_3, "decline")
    declined = emu.ring(rx.url)
    assert (
        await graph.act(declined, "redirect", {"targets": [target("user", USER_3)]})
    ).status_code == 202
    data = await wait_for(lambda: terminated(rx, declined))
    assert data["resultInfo"]["code"] == 603 and "answeredBy" not in data
    _assert_graph_error(await graph.act(await _p2p(graph, rx), "redirect", body), 409)


# --------------------------------------------------------------------------- transfer


async def test_transfer_completes_or_fails_on_request(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = await _p2p(graph, rx)
    body = {"transferTarget": target("user", USER_2, endpointType="default", languageId="en-us")}
    _assert_graph_error(await graph.act(call_id, "transfer", {}), 400)
    emu.fail_next_transfer(call_id)
    assert (await graph.act(call_id, "transfer", body)).status_code == 202
    await wait_for(lambda: len(states(rx, call_id)) >= 5)
    failed = of_call(rx, call_id)[-1]["resourceData"]
    assert states(rx, call_id)[-2:] == [("updated", "transferring"), ("updated", "established")]
    info = failed["resultInfo"]
    assert (info["code"], info["subCode"]) == (500, 7000) and "subcode" not in info
    assert (await graph.get(f"/communications/calls/{call_id}")).json()["state"] == "established"

    assert (await graph.act(call_id, "transfer", body)).status_code == 202
    data = await wait_for(lambda: terminated(rx, call_id))
    assert states(rx, call_id)[-3:] == [
        ("updated", "transferring"),
        ("updated", "transferAccepted"),
        ENDED,
    ]
    assert data["resultInfo"] == {
        "@odata.type": "#microsoft.graph.resultInfo",
        "code": 0,
        "subcode": 7015,
        "message": "GracefulTransferCompleted",
    }


async def test_consultative_and_group_transfers(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    group = await _established(graph, rx, call_body(rx.url))
    body = {"transferTarget": target("user", USER_2)}
    _assert_graph_error(await graph.act(group, "transfer", body), 400)  # transferee needed
    transferee = {"identity": identity("user", USER_3), "participantId": "p-1"}
    assert (
        await graph.act(group, "transfer", {**body, "transferee": transferee})
    ).status_code == 202
    await wait_for(lambda: terminated(rx, group))
    p2p, other = await _p2p(graph, rx), await _p2p(graph, rx)
    consult = {"transferTarget": target("user", USER_2, replacesCallId=other)}
    assert (await graph.act(p2p, "transfer", consult)).status_code == 202
    data = await wait_for(lambda: terminated(rx, p2p))
    assert data["terminationReason"] == "AppTransferred" and "resultInfo" not in data
    via_http = await graph.control("POST", f"/calls/{other}/fail-next-transfer")
    assert via_http.status_code == 204 and emu.calls[other].fail_next_transfer


# --------------------------------------------------------------------------- keepAlive


async def test_keepalive_keeps_the_call_until_it_stops(
    tmp_path: pathlib.Path, rx: CallbackReceiver
) -> None:
    async with emulator_and_graph(tmp_path, **{**FAST, "keepalive_expiry_s": 0.6}) as (_, graph):
        call_id = await _p2p(graph, rx)
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.4
        while loop.time() < until:  # keepAlive more often than the expiry, for over 2 expiries
            resp = await graph.act(call_id, "keepAlive")
            assert resp.status_code == 200 and resp.content == b""
            await asyncio.sleep(0.1)
        assert terminated(rx, call_id) is None
        data = await wait_for(lambda: terminated(rx, call_id))
        assert data["resultInfo"] == {
            "@odata.type": "#microsoft.graph.resultInfo",
            "code": 408,
            "subcode": 8537,
            "message": "Keep Alive timeout, cleaned up inactive call.",
        }
        _assert_graph_error(await graph.act(call_id, "keepAlive"), 404)


# --------------------------------------------------------------------------- in-call actions


async def test_mute_unmute_and_recording_status(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = await _established(graph, rx, call_body(rx.url))
    base = f"{emu.graph_url}/communications/calls/{call_id}"
    for action, odata, muted in (
        ("mute", "muteParticipantOperation", True),
        ("unmute", "unmuteParticipantOperation", False),
    ):
        resp = await graph.act(call_id, action, {"clientContext": action})
        assert resp.status_code == 200
        op = resp.json()
        assert op["@odata.type"] == f"#microsoft.graph.{odata}"
        assert op["status"] == "completed" and op["clientContext"] == action
        assert resp.headers["Location"] == f"{base}/operations/{op['id']}"
        await wait_for(lambda m=muted: bot_muted(rx, call_id) is m)
    _assert_graph_error(await graph.act(call_id, "mute", {"clientContext": "x" * 257}), 400)
    _assert_graph_error(await graph.act(call_id, "updateRecordingStatus", {"status": "on"}), 400)
    resp = await graph.act(call_id, "updateRecordingStatus", {"status": "recording"})
    assert resp.status_code == 200
    assert resp.json()["@odata.type"] == "#microsoft.graph.updateRecordingStatusOperation"
    assert resp.json()["status"] == "completed" and resp.json()["resultInfo"] is None
    bot = (await graph.get(f"{base}/participants")).json()["value"][0]
    assert bot["recordingInfo"]["recordingStatus"] == "recording"


async def test_tones_pressed_by_the_caller(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = await _p2p(graph, rx)
    assert emu.press_tones(call_id, "1") == []  # not subscribed: not reported
    resp = await graph.act(call_id, "subscribeToTone", {"clientContext": "t"})
    assert resp.status_code == 200 and resp.json()["status"] == "completed"
    assert emu.press_tones(call_id, "5#") == [1, 2]
    via_http = await graph.control("POST", f"/calls/{call_id}/tones", {"tones": ["flash"]})
    assert via_http.status_code == 200 and via_http.json() == {"sequenceIds": [3]}
    await wait_for(lambda: len(tone_notes(rx, call_id)) == 3)
    tones = tone_notes(rx, call_id)
    assert [n["changeType"] for n in tones] == ["updated"] * 3
    assert [n["resourceUrl"] for n in tones] == [f"/communications/calls/{call_id}"] * 3
    infos = [n["resourceData"]["toneInfo"] for n in tones]
    assert [(i["sequenceId"], i["tone"]) for i in infos] == [
        (1, "tone5"),
        (2, "pound"),
        (3, "flash"),
    ]
    assert infos[0]["@odata.type"] == "#microsoft.graph.toneInfo"
    assert tones[0]["resourceData"]["state"] == "established"
    bad = await graph.control("POST", f"/calls/{call_id}/tones", {"tones": "5x"})
    _assert_graph_error(bad, 400)
    incoming = emu.ring(rx.url)
    _assert_graph_error(
        await graph.control("POST", f"/calls/{incoming}/tones", {"tones": "1"}), 409
    )


async def test_send_dtmf_tones(emu: Emulator, graph: Graph, rx: CallbackReceiver) -> None:
    call_id = await _p2p(graph, rx)
    for body in (
        {"tones": []},
        {"tones": ["tone1", "tone11"]},
        {"tones": ["5"]},
        {"tones": ["tone1"], "delayBetweenTonesMs": -1},
    ):
        _assert_graph_error(await graph.act(call_id, "sendDtmfTones", body), 400)
    body = {
        "tones": ["tone1", "star", "pound", "a"],
        "delayBetweenTonesMs": 10,
        "clientContext": "d",
    }
    resp = await graph.act(call_id, "microsoft.graph.sendDtmfTones", body)
    assert resp.status_code == 200
    op = resp.json()
    assert (
        op["@odata.type"] == "#microsoft.graph.sendDtmfTonesOperation" and op["status"] == "running"
    )
    done = await wait_for(lambda: op_done(rx, call_id, op["id"]))
    assert done["status"] == "completed" and done["completionReason"] == "completedSuccessfully"
    assert done["clientContext"] == "d"
    slow = (
        await graph.act(
            call_id, "sendDtmfTones", {"tones": ["tone1"] * 3, "delayBetweenTonesMs": 2000}
        )
    ).json()
    assert (await graph.act(call_id, "cancelMediaProcessing")).status_code == 200
    cancelled = await wait_for(lambda: op_done(rx, call_id, slow["id"]))
    assert cancelled["status"] == "completed"
    assert cancelled["completionReason"] == "mediaOperationCanceled"


async def test_play_prompt_limits_and_completion(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = await _p2p(graph, rx)
    for body in (
        {"prompts": []},
        {"prompts": [prompt()] * 21},
        {"prompts": [prompt("http://cdn.contoso.com/a.wav")]},
        {"prompts": [{"mediaInfo": {}}]},
        {"prompts": [prompt()], "clientContext": "x" * 257},
    ):
        _assert_graph_error(await graph.act(call_id, "playPrompt", body), 400)
    # 50 ms a prompt: the first operation (20 prompts, 1 s) is still playing when the second
    # is asked for, however loaded the machine (one 50 ms operation was over before it, once).
    emu.set_prompt_seconds(call_id, 0.05)
    resp = await graph.act(
        call_id, "playPrompt", {"prompts": [prompt()] * 20, "clientContext": "p"}
    )
    assert resp.status_code == 200 and resp.json()["status"] == "running"
    second = (await graph.act(call_id, "playPrompt", {"prompts": [prompt()]})).json()
    assert second["status"] == "notStarted"  # queued behind the first
    done = await wait_for(lambda: op_done(rx, call_id, second["id"]))
    finished = [n["resourceData"]["id"] for n in of_kind(rx, call_id, "/operations/")]
    assert finished == [resp.json()["id"], second["id"]]  # in queue order
    assert done["status"] == "completed"
    assert (done["resultInfo"]["code"], done["resultInfo"]["subcode"]) == (200, 0)


# --------------------------------------------------------------------------- recordings


async def _record(graph: Graph, call_id: str, **options: Any) -> dict[str, Any]:
    resp = await graph.act(call_id, "recordResponse", {"clientContext": "r", **options})
    assert resp.status_code == 200, resp.text
    op: dict[str, Any] = resp.json()
    assert op["@odata.type"] == "#microsoft.graph.recordOperation"
    return op


async def test_the_caller_model_decides_how_a_recording_ends(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    calls = [await _p2p(graph, rx) for _ in range(4)]
    pauses, silent, talker, presser = calls
    emu.set_caller(pauses, speech_after_s=0.1, speech_s=0.2)
    emu.set_caller(silent, speech_after_s=None)
    emu.set_caller(talker, speech_after_s=0.0, speech_s=None)
    ctl = await graph.control(
        "PUT", f"/calls/{presser}/caller", {"speechAfterS": 0, "speechS": None}
    )
    assert ctl.status_code == 200 and ctl.json() == {"speechAfterS": 0.0, "speechS": None}
    short = {"initialSilenceTimeoutInSeconds": 1, "maxSilenceTimeoutInSeconds": 1}
    ops = {
        pauses: await _record(graph, pauses, maxRecordDurationInSeconds=5, **short),
        silent: await _record(graph, silent, playBeep=False, stopTones=["pound", "tone1"], **short),
        talker: await _record(graph, talker, maxRecordDurationInSeconds=1, prompts=[prompt()]),
        presser: await _record(
            graph, presser, stopTones=["#", "1", "*"], maxRecordDurationInSeconds=10
        ),
    }
    await wait_for(lambda: emu.calls[presser].running is not None)
    emu.press_tones(presser, "2")  # not a stop tone
    assert emu.calls[presser].running is not None
    assert emu.calls[presser].running.id == ops[presser]["id"]
    emu.press_tones(presser, "*")
    done = {c: await wait_for(lambda c=c: op_done(rx, c, ops[c]["id"])) for c in calls}
    expected = {
        pauses: ("completed", "maxSilenceTimeout", 200, 0),
        silent: ("failed", "initialSilenceTimeout", 400, 0),
        talker: ("completed", "maxRecordDurationReached", 200, 8515),
        presser: ("completed", "stopToneDetected", 200, 0),
    }
    for c, (status, reason, code, subcode) in expected.items():
        data = done[c]
        assert (data["status"], data["completionReason"]) == (status, reason), data
        assert (data["resultInfo"]["code"], data["resultInfo"]["subcode"]) == (code, subcode)
    assert done[silent]["recordingLocation"] == "" and done[silent]["recordingAccessToken"] == ""
    timeline = {c: emu.calls[c].operations[ops[c]["id"]].timeline for c in calls}
    assert timeline[pauses] == {
        "listenAfterS": 0.2,  # the beep
        "recordedS": 1.3,  # 0.1 silent, 0.2 speech, 1 s of silence
        "speech": [0.1, 0.3],
        "outcome": "maxSilenceTimeout",
    }
    assert timeline[silent] is not None and timeline[silent]["listenAfterS"] == 0.0  # no beep
    assert timeline[talker] is not None
    assert timeline[talker]["listenAfterS"] == pytest.approx(0.25)  # prompt + beep
    assert timeline[talker]["recordedS"] == 1.0 and timeline[talker]["speech"] == [0.0, 1.0]
    assert timeline[presser] is not None and timeline[presser]["recordedS"] < 5
    for c in (pauses, talker, presser):
        wav = await graph.http.get(
            done[c]["recordingLocation"],
            headers={"Authorization": f"Bearer {done[c]['recordingAccessToken']}"},
        )
        assert wav.status_code == 200 and wav.headers["Content-Type"] == "audio/wav"
        assert wav_seconds(wav.content) == pytest.approx(timeline[c]["recordedS"], abs=0.01)


async def test_recording_download_needs_its_token(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = await _p2p(graph, rx)
    op = await _record(graph, call_id)  # no caller model: media_op_seconds, max duration
    data = await wait_for(lambda: op_done(rx, call_id, op["id"]))
    location, token = data["recordingLocation"], data["recordingAccessToken"]
    assert location == f"{emu.base_url}/_emulator/recordings/{op['id']}" and token
    ok = await graph.http.get(location, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.content.startswith(b"RIFF")
    for headers in ({}, {"Authorization": "Bearer nope"}, graph.headers):
        _assert_graph_error(await graph.http.get(location, headers=headers), 401)
    unknown = f"{emu.base_url}/_emulator/recordings/0fe0623f-d628-42ed-b4bd-8ac290072cc5"
    _assert_graph_error(
        await graph.http.get(unknown, headers={"Authorization": f"Bearer {token}"}), 404
    )
    got = (await graph.get(f"/communications/calls/{call_id}/operations/{op['id']}")).json()
    assert got["recordingLocation"] == location and got["status"] == "completed"


@pytest.mark.parametrize(
    "body",
    [
        {"prompts": [prompt(), prompt()]},
        {"maxRecordDurationInSeconds": 0},
        {"maxSilenceTimeoutInSeconds": 121},
        {"initialSilenceTimeoutInSeconds": "5"},
        {"stopTones": ["x"]},
        {"stopTones": "#"},
        {"playBeep": "yes"},
        {"bargeInAllowed": 1},
    ],
)
async def test_record_response_refuses_invalid_options(
    graph: Graph, rx: CallbackReceiver, body: dict[str, Any]
) -> None:
    call_id = await _established(graph, rx, call_body(rx.url))
    _assert_graph_error(await graph.act(call_id, "recordResponse", body), 400)


async def test_barge_in_cancels_what_plays(tmp_path: pathlib.Path, rx: CallbackReceiver) -> None:
    async with emulator_and_graph(tmp_path, **{**FAST, "media_op_seconds": 5}) as (emu, graph):
        call_id = await _p2p(graph, rx)
        playing = (await graph.act(call_id, "playPrompt", {"prompts": [prompt()]})).json()
        queued = (await graph.act(call_id, "playPrompt", {"prompts": [prompt()]})).json()
        emu.set_caller(call_id, speech_after_s=0.0, speech_s=0.1)
        rec = await _record(
            graph, call_id, bargeInAllowed=True, playBeep=False, maxSilenceTimeoutInSeconds=1
        )
        assert rec["status"] == "running"
        for op in (playing, queued):
            data = await wait_for(lambda o=op: op_done(rx, call_id, o["id"]))
            assert data["status"] == "failed" and data["resultInfo"]["subcode"] == 8508
        data = await wait_for(lambda: op_done(rx, call_id, rec["id"]))
        assert data["completionReason"] == "maxSilenceTimeout"


# --------------------------------------------------------------------------- participants


async def test_invite_mute_and_remove_participants(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = await _established(graph, rx, call_body(rx.url))
    base = f"/communications/calls/{call_id}/participants"
    invite = {
        "participants": [target("user", USER_2), target("user", USER_3)],
        "clientContext": "i",
    }
    too_many = {"participants": [target("user", USER_2)] * 6}
    _assert_graph_error(
        await graph.http.post(f"{base}/invite", json=too_many, headers=graph.headers), 400
    )
    resp = await graph.http.post(f"{base}/invite", json=invite, headers=graph.headers)
    assert resp.status_code == 200, resp.text
    op = resp.json()
    assert op["@odata.type"] == "#microsoft.graph.inviteParticipantsOperation"
    assert op["status"] == "running" and len(op["participants"]) == 2
    assert resp.headers["Location"].endswith(f"/calls/{call_id}/operations/{op['id']}")
    done = await wait_for(lambda: op_done(rx, call_id, op["id"]))
    assert done["status"] == "completed" and done["clientContext"] == "i"
    roster = await wait_for(lambda: of_kind(rx, call_id, "/participants"))
    assert len(roster[-1]["resourceData"]) == 3
    listed = (await graph.get(base)).json()["value"]
    ids = [p["id"] for p in listed]
    assert [p["info"]["identity"].get("user", {}).get("id") for p in listed] == [
        None,
        USER_2,
        USER_3,
    ]
    got = await graph.get(f"{base}/{ids[1]}")
    assert got.status_code == 200 and got.json()["id"] == ids[1]

    resp = await graph.http.post(
        f"{base}/{ids[1]}/mute", json={"clientContext": "m"}, headers=graph.headers
    )
    assert resp.status_code == 200
    assert resp.json()["@odata.type"] == "#microsoft.graph.muteParticipantOperation"
    assert resp.json()["status"] == "completed"
    await wait_for(lambda: len(of_kind(rx, call_id, "/participants")) >= 2)
    muted = of_kind(rx, call_id, "/participants")[-1]["resourceData"]
    assert [p["isMuted"] for p in muted] == [False, True, False]

    assert (await graph.delete(f"{base}/{ids[2]}")).status_code == 204
    assert [p["id"] for p in (await graph.get(base)).json()["value"]] == ids[:2]
    for resp in (
        await graph.delete(f"{base}/{ids[2]}"),
        await graph.get(f"{base}/nobody"),
        await graph.http.post(f"{base}/nobody/mute", json={}, headers=graph.headers),
    ):
        _assert_graph_error(resp, 404, "itemNotFound")
    _assert_graph_error(await graph.delete(f"{base}/{ids[0]}"), 400)  # the bot itself


async def test_invitations_that_nobody_takes_and_p2p_limits(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    emu.set_callee(USER_3, "decline")
    group = await _established(graph, rx, call_body(rx.url))
    url = f"/communications/calls/{group}/participants/invite"
    resp = await graph.http.post(
        url, json={"participants": [target("user", USER_3)]}, headers=graph.headers
    )
    done = await wait_for(lambda: op_done(rx, group, resp.json()["id"]))
    assert done["status"] == "failed" and done["resultInfo"]["code"] == 603
    p2p = await _p2p(graph, rx)
    two = {"participants": [target("user", USER_2), target("user", USER_3)]}
    p2p_url = f"/communications/calls/{p2p}/participants/invite"
    _assert_graph_error(await graph.http.post(p2p_url, json=two, headers=graph.headers), 400)
    replacing = {
        "participants": [target("user", USER_2, replacesCallId=group), target("user", USER_3)]
    }
    resp = await graph.http.post(p2p_url, json=replacing, headers=graph.headers)
    assert resp.status_code == 200 and len(resp.json()["participants"]) == 1


# --------------------------------------------------------------------------- operations, errors


async def test_every_operation_can_be_read_back(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = await _established(graph, rx, call_body(rx.url))
    ops = [
        (await graph.act(call_id, name, body)).json()
        for name, body in (
            ("playPrompt", {"prompts": [prompt()]}),
            ("recordResponse", {}),
            ("subscribeToTone", {}),
            ("sendDtmfTones", {"tones": ["tone0"]}),
            ("mute", {}),
            ("unmute", {}),
            ("updateRecordingStatus", {"status": "notRecording"}),
        )
    ]
    invite = await graph.http.post(
        f"/communications/calls/{call_id}/participants/invite",
        json={"participants": [target("user", USER_2)]},
        headers=graph.headers,
    )
    ops.append(invite.json())
    for op in ops:
        got = await graph.get(f"/communications/calls/{call_id}/operations/{op['id']}")
        assert got.status_code == 200
        assert got.json()["@odata.type"] == op["@odata.type"] and got.json()["id"] == op["id"]
    unknown = await graph.get(f"/communications/calls/{call_id}/operations/{USER_ID}")
    _assert_graph_error(unknown, 404, "itemNotFound")


async def test_actions_in_the_wrong_state(tmp_path: pathlib.Path, rx: CallbackReceiver) -> None:
    async with emulator_and_graph(tmp_path, **{**FAST, "ring_s": 30}) as (emu, graph):
        ringing = await graph.create_ok(call_body(rx.url, targets=[target("user", USER_ID)]))
        await wait_for(lambda: last_state(rx, ringing) == "ringing")
        for action, body in (
            ("playPrompt", {"prompts": [prompt()]}),
            ("transfer", {"transferTarget": target("user", USER_2)}),
            ("answer", ANSWER),
            ("subscribeToTone", {}),
        ):
            _assert_graph_error(await graph.act(ringing, action, body), 409, "Conflict")
        assert (await graph.act(ringing, "keepAlive")).status_code == 200  # any live state
        with pytest.raises(ValueError):
            emu.press_tones(ringing, "1")
        app_hosted = call_body(
            rx.url, mediaConfig={"@odata.type": "#microsoft.graph.appHostedMediaConfig"}
        )
        group = await _established(graph, rx, app_hosted)
        _assert_graph_error(await graph.act(group, "playPrompt", {"prompts": [prompt()]}), 400)
        _assert_graph_error(await graph.act(group, "changeScreenSharingRole", {}), 400)


async def test_faults_apply_to_the_new_endpoints(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    call_id = emu.ring(rx.url)
    emu.faults.add(Fault(path_pattern=r"/answer$", status=429, retry_after=1))
    added = await graph.control(
        "POST", "/faults", {"pathPattern": r"/participants/invite$", "status": 503}
    )
    assert added.status_code == 201
    answer = {**ANSWER, "callbackUri": rx.url, "acceptedModalities": ["audio"]}
    resp = await graph.act(call_id, "answer", answer)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert resp.json()["error"]["code"] == "activityLimitReached"
    assert emu.calls[call_id].state == "incoming"  # the fault answered, nothing happened
    assert (await graph.act(call_id, "answer", answer)).status_code == 202
    await wait_for(lambda: last_state(rx, call_id) == "established")
    url = f"/communications/calls/{call_id}/participants/invite"
    body = {"participants": [target("user", USER_2)]}
    resp = await graph.http.post(url, json=body, headers=graph.headers)
    _assert_graph_error(resp, 503, "serviceNotAvailable")
    assert (await graph.http.post(url, json=body, headers=graph.headers)).status_code == 200
    assert len(emu.faults) == 0


async def test_incoming_notification_tokens_verify_against_the_jwks(
    emu: Emulator, graph: Graph, rx: CallbackReceiver
) -> None:
    tenant = "11111111-2222-3333-4444-555555555555"
    created = await graph.control(
        "POST", "/calls", {"callbackUri": rx.url, "caller": PHONE, "tenantId": tenant}
    )
    assert created.status_code == 201
    call_id = created.json()["id"]
    assert created.json()["call"]["state"] == "incoming"
    await wait_for(lambda: of_call(rx, call_id))
    token = rx.received[-1].headers["Authorization"].split(" ", 1)[1]
    jwks = jwt.PyJWKClient(emu.notification_jwks_url, ssl_context=client_ssl_context(emu))
    key = await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=emu.config.client_id,
        issuer=emu.notification_issuer,
    )
    assert claims["tid"] == tenant
    for body in ({}, {"callbackUri": rx.url, "caller": 5}, {"callbackUri": rx.url, "target": "x"}):
        _assert_graph_error(await graph.control("POST", "/calls", body), 400)
    _assert_graph_error(await graph.control("PUT", f"/calls/{USER_ID}/caller", {}), 404)
    bad = await graph.control("PUT", f"/calls/{call_id}/caller", {"speechAfterS": -1})
    _assert_graph_error(bad, 400)
