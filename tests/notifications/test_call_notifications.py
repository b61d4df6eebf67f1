"""Call notifications: resourceData arrays split into typed events, typed incoming calls and
tones, and tones delivered in sequenceId order (within a POST, across POSTs, across replicas
sharing a Redis log), through the parser and through real gateways and WatchOperations."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest

from commsgw._errors import NotificationTooLarge
from commsgw.emulator import Emulator
from commsgw.eventlog import Hub, LogEntry, MemoryEventLog
from commsgw.notifications._parse import ParsedNotification, parse_notifications
from commsgw.notifications._tones import ToneMarks, ToneOrder, in_sequence
from commsgw.notifications._webhook import http_status_of
from commsgw.server._gateway import Gateway
from graphcomms.v1 import call_types_pb2, calls_pb2, calls_pb2_grpc
from helpers.gateway import gateway_settings, running_gateway
from helpers.shared_redis import SHARED_REDIS, drop_keys

TENANT = "00000000-0000-0000-0000-0000000000aa"
CALL = "57dab8b1-894c-409a-b240-bd8beae78896"
CALL_URL_ID = "57DAB8B1894C409AB240BD8BEAE78896"
OP1 = "0fe0623f-d628-42ed-b4bd-8ac290072cc5"
OP2 = "1fe0623f-d628-42ed-b4bd-8ac290072cc6"
NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
REDIS = SHARED_REDIS
WAIT_S = 10.0

Resp = calls_pb2.WatchOperationsResponse


# -- notification builders ------------------------------------------------------------------------


def body(*elements: dict[str, Any]) -> bytes:
    return json.dumps(
        {"@odata.type": "#microsoft.graph.commsNotifications", "value": list(elements)}
    ).encode()


def parse(data: bytes) -> list[ParsedNotification]:
    return parse_notifications(data, tenant_id=TENANT, receive_time=NOW)


def completion(op_id: str, ctx: str = "c", kind: str = "playPromptOperation") -> dict[str, Any]:
    return {
        "@odata.type": f"#microsoft.graph.{kind}",
        "id": op_id,
        "clientContext": ctx,
        "status": "completed",
        "resultInfo": {"code": 200, "subcode": 0, "message": "Action completed successfully."},
    }


def packaged(call_id: str, entities: list[Any], *, tail: str = "/operations") -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resourceUrl": f"/communications/calls/{call_id}{tail}",
        "resourceData": entities,
    }


def call_note(call_id: str, rd: dict[str, Any], change: str = "updated") -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": change,
        "resourceUrl": f"/communications/calls/{call_id}",
        "resourceData": {"@odata.type": "#microsoft.graph.call", **rd},
    }


def tone_note(call_id: str, seq: Any, tone: Any = "tone1") -> dict[str, Any]:
    return call_note(
        call_id,
        {
            "state": "established",
            "toneInfo": {
                "@odata.type": "#microsoft.graph.toneInfo",
                "sequenceId": seq,
                "tone": tone,
            },
        },
    )


def identity(ident: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.identity", "id": ident, "displayName": name, **extra}


def incoming_call(call_id: str, **extra: Any) -> dict[str, Any]:
    """The documented incoming call (call-answer page), with every field the gateway reads."""
    return call_note(
        call_id,
        {
            "@odata.id": f"/communications/calls/{call_id}",
            "@odata.etag": 'W/"5445"',
            "state": "incoming",
            "direction": "incoming",
            "callbackUri": "https://bot.contoso.com/callback",
            "source": {
                "@odata.type": "#microsoft.graph.participantInfo",
                "identity": {
                    "@odata.type": "#microsoft.graph.identitySet",
                    "user": identity(
                        "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698", "Test User", tenantId="t1"
                    ),
                    "phone": identity("+14255550123", ""),
                },
                "endpointType": "default",
                "region": "westus",
                "languageId": "en-US",
                "participantId": "p-source",
            },
            "targets": [
                {
                    "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                    "identity": {"application": identity("app-1", "Test BOT")},
                    "replacesCallId": "call-old",
                    "hidden": True,
                    "participantId": "p-bot",
                    "removeFromDefaultAudioRoutingGroup": True,
                },
                {
                    "@odata.type": "#microsoft.graph.participantInfo",
                    "identity": {
                        "applicationInstance": identity("inst-1", "Line"),
                        "guest": identity("g-1", "Guest"),
                    },
                    "endpointType": "default",
                },
            ],
            "requestedModalities": [
                "audio",
                "Video",
                "videoBasedScreenSharing",
                "data",
                "hologram",
            ],
            "meetingInfo": {
                "@odata.type": "#microsoft.graph.organizerMeetingInfo",
                "organizer": {"user": identity("org-1", "Bob", tenantId="t2")},
            },
            "chatInfo": {
                "@odata.type": "#microsoft.graph.chatInfo",
                "threadId": "19:meeting_x@thread.v2",
                "messageId": "0",
                "replyChainMessageId": "1",
            },
            "tenantId": TENANT,
            **extra,
        },
        change="created",
    )


async def _until(condition: Any, timeout: float = WAIT_S) -> None:
    """Wait until `condition()` holds (checked every 10 ms)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# -- resourceData arrays --------------------------------------------------------------------------


def test_array_of_operations_becomes_one_operation_update_each_in_order() -> None:
    note = packaged(CALL_URL_ID, [completion(OP1, "a"), completion(OP2, "b", "recordOperation")])
    items = parse(body(note))
    assert [i.event.WhichOneof("kind") for i in items] == ["operation_update"] * 2
    ops = [i.event.operation_update.operation for i in items]
    assert [(o.id, o.client_context) for o in ops] == [(OP1, "a"), (OP2, "b")]
    assert [o.type for o in ops] == [
        calls_pb2.OPERATION_TYPE_PLAY_PROMPT,
        calls_pb2.OPERATION_TYPE_RECORD,
    ]
    assert all(o.status == calls_pb2.OPERATION_STATUS_COMPLETED for o in ops)
    assert all(i.event.call_id == CALL for i in items)
    assert all(i.event.resource_url == note["resourceUrl"] for i in items)
    assert [i.operation_key for i in items] == [(TENANT, CALL, OP1), (TENANT, CALL, OP2)]


def test_untyped_elements_on_the_operations_collection_are_operations() -> None:
    elements = [{"id": OP1.upper(), "status": "failed"}, {"id": OP2, "status": "running"}]
    items = parse(body(packaged(CALL, elements)))
    ops = [i.event.operation_update.operation for i in items]
    assert [(o.id, o.status) for o in ops] == [
        (OP1, calls_pb2.OPERATION_STATUS_FAILED),
        (OP2, calls_pb2.OPERATION_STATUS_RUNNING),
    ]
    # The URL naming one operation gives the id of elements that have none.
    items = parse(body(packaged(CALL, [{"status": "running"}, {}], tail=f"/operations/{OP1}")))
    assert [i.event.operation_update.operation.id for i in items] == [OP1, OP1]


def test_mixed_array_keeps_order_and_others_carry_their_element() -> None:
    participant = {"@odata.type": "#microsoft.graph.participant", "id": "p1", "isMuted": True}
    note = packaged(
        CALL,
        [
            {"@odata.type": "#microsoft.graph.call", "state": "established"},
            completion(OP1),
            participant,
            7,
        ],
        tail="",
    )
    note["extra"] = {"kept": ["é", 1.5]}
    items = parse(body(note))
    kinds = [i.event.WhichOneof("kind") for i in items]
    assert kinds == ["call_update", "operation_update", "other", "other"]
    assert items[0].event.call_update.state == calls_pb2.CALL_STATE_ESTABLISHED
    other = items[2].event.other
    assert other.odata_type == "#microsoft.graph.participant"
    assert json.loads(other.raw_json) == {**note, "resourceData": participant}
    assert list(json.loads(other.raw_json)) == list(note)  # Graph's key order
    assert json.loads(items[3].event.other.raw_json)["resourceData"] == 7
    assert items[3].event.other.odata_type == ""


def test_split_copies_of_a_large_envelope_are_bounded() -> None:
    note = packaged(CALL, [completion(OP1), *range(20)])
    note["padding"] = "x" * 10_000
    assert len(parse(body(note))) == 21  # 20 copies of 10 kB: within the slack
    note["padding"] = "x" * 100_000
    with pytest.raises(NotificationTooLarge) as caught:
        parse(body(note))
    assert http_status_of(caught.value) == 413
    assert "value[0]" in caught.value.message


def test_array_without_operation_or_call_stays_whole() -> None:
    note = packaged(
        CALL,
        [{"@odata.type": "#microsoft.graph.participant", "id": p} for p in ("p1", "p2")],
        tail="/participants",
    )
    (item,) = parse(body(note))
    assert item.event.WhichOneof("kind") == "other"
    assert item.event.other.odata_type == ""
    assert json.loads(item.event.other.raw_json) == note


def test_array_on_a_url_without_a_call_takes_the_call_id_of_call_elements() -> None:
    note = {
        "changeType": "updated",
        "resourceUrl": "/communications/somethingElse",
        "resourceData": [
            {"@odata.type": "#microsoft.graph.call", "id": CALL_URL_ID, "state": "Terminated"},
            completion(OP1),
        ],
    }
    items = parse(body(note))
    assert [i.event.WhichOneof("kind") for i in items] == ["call_update", "other"]
    assert items[0].event.call_id == CALL
    assert items[0].event.call_update.state == calls_pb2.CALL_STATE_TERMINATED
    assert items[1].event.call_id == ""


def test_array_dedup_keys_are_stable_distinct_and_match_the_single_notification() -> None:
    note = packaged(CALL, [completion(OP1), completion(OP2)])
    first = [i.dedup_key for i in parse(body(note))]
    # Redelivered with another key order and whitespace: the same keys.
    reordered = {k: note[k] for k in reversed(list(note))}
    again = json.dumps({"value": [reordered]}, indent=2).encode()
    assert [i.dedup_key for i in parse(again)] == first
    assert len(set(first)) == 2
    # The same change sent alone has the key of its packaged copy.
    alone = {**note, "resourceData": completion(OP2)}
    assert parse(body(alone))[0].dedup_key == first[1]
    # Differing only in position is the same change: the log keeps the first copy.
    twice = [i.dedup_key for i in parse(body(packaged(CALL, [completion(OP1), completion(OP1)])))]
    assert twice == [first[0], first[0]]
    # And no element key is the key of the whole array.
    whole = parse(body(packaged(CALL, [{"@odata.type": "#microsoft.graph.participant"}])))
    assert whole[0].dedup_key not in first


# -- incoming calls -------------------------------------------------------------------------------


def test_incoming_call_is_typed_with_every_field() -> None:
    (item,) = parse(body(incoming_call(CALL_URL_ID)))
    ev = item.event
    assert ev.change_type == calls_pb2.CHANGE_TYPE_CREATED
    assert ev.call_id == CALL
    cu = ev.call_update
    assert cu.state == calls_pb2.CALL_STATE_INCOMING
    assert cu.direction == call_types_pb2.CALL_DIRECTION_INCOMING
    assert cu.callback_uri == "https://bot.contoso.com/callback"
    src = cu.source
    assert src.identity.user == call_types_pb2.Identity(
        id="8A34A46B-3D17-4ADC-8DCE-DC4E7D572698", display_name="Test User", tenant_id="t1"
    )
    assert src.identity.phone.id == "+14255550123"
    assert not src.identity.HasField("application")
    assert (src.endpoint_type, src.region, src.language_id, src.participant_id) == (
        "default",
        "westus",
        "en-US",
        "p-source",
    )
    bot, line = cu.targets
    assert bot.identity.application.display_name == "Test BOT"
    assert (bot.replaces_call_id, bot.hidden, bot.participant_id) == ("call-old", True, "p-bot")
    assert bot.remove_from_default_audio_routing_group
    assert line.identity.application_instance.id == "inst-1"
    assert line.identity.guest.display_name == "Guest"
    assert not line.hidden
    assert list(cu.requested_modalities) == [
        call_types_pb2.MODALITY_AUDIO,
        call_types_pb2.MODALITY_VIDEO,
        call_types_pb2.MODALITY_VIDEO_BASED_SCREEN_SHARING,
        call_types_pb2.MODALITY_DATA,
        call_types_pb2.MODALITY_UNSPECIFIED,
    ]
    assert cu.meeting_info.WhichOneof("kind") == "organizer"
    assert cu.meeting_info.organizer.user.tenant_id == "t2"
    assert cu.chat_info == call_types_pb2.ChatInfo(
        thread_id="19:meeting_x@thread.v2", message_id="0", reply_chain_message_id="1"
    )
    assert cu.answer_deadline.ToDatetime(UTC) == NOW + timedelta(seconds=15)
    assert not cu.HasField("tone_info")


def test_policy_based_recording_call_has_five_seconds_and_token_meeting_is_unset() -> None:
    note = incoming_call(
        CALL,
        incomingContext={"sourceParticipantId": "s", "observedParticipantId": "o"},
        meetingInfo={"@odata.type": "#microsoft.graph.tokenMeetingInfo", "token": "abc"},
    )
    cu = parse(body(note))[0].event.call_update
    assert cu.answer_deadline.ToDatetime(UTC) == NOW + timedelta(seconds=5)
    assert not cu.HasField("meeting_info")
    # Without an observed participant it is a regular call.
    note["resourceData"]["incomingContext"] = {
        "sourceParticipantId": "s",
        "observedParticipantId": "",
    }
    cu = parse(body(note))[0].event.call_update
    assert cu.answer_deadline.ToDatetime(UTC) == NOW + timedelta(seconds=15)


@pytest.mark.parametrize(
    "meeting",
    [
        {
            "@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo",
            "joinMeetingId": "123 456 7",
            "passcode": "psw",
        },
        {"joinMeetingId": 1234567, "passcode": "psw"},
    ],
)
def test_join_meeting_id_meeting_info(meeting: dict[str, Any]) -> None:
    cu = parse(body(call_note(CALL, {"state": "established", "meetingInfo": meeting})))[
        0
    ].event.call_update
    assert cu.meeting_info.join_meeting_id == call_types_pb2.JoinMeetingId(
        join_meeting_id="1234567", passcode="psw"
    )


def test_other_states_carry_the_same_fields_without_a_deadline() -> None:
    rd = incoming_call(CALL)["resourceData"]
    rd.update(state="Establishing", direction="Outgoing")
    cu = parse(body(call_note(CALL, rd)))[0].event.call_update
    assert cu.state == calls_pb2.CALL_STATE_ESTABLISHING
    assert cu.direction == call_types_pb2.CALL_DIRECTION_OUTGOING
    assert cu.source.identity.user.display_name == "Test User"
    assert len(cu.targets) == 2
    assert not cu.HasField("answer_deadline")


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("Established", calls_pb2.CALL_STATE_ESTABLISHED),
        ("INCOMING", calls_pb2.CALL_STATE_INCOMING),
        ("ringing", calls_pb2.CALL_STATE_RINGING),
        ("Ringing", calls_pb2.CALL_STATE_RINGING),
        ("TransferAccepted", calls_pb2.CALL_STATE_TRANSFER_ACCEPTED),
        ("unknownFutureValue", calls_pb2.CALL_STATE_UNSPECIFIED),
    ],
)
def test_states_in_any_case(state: str, expected: int) -> None:
    # The legacy format: `resource` instead of resourceUrl, a capitalised state.
    legacy = {
        "subscriptionId": "2887ad7e-f4fa-45f2-9d5b-36f7b6a1b2a8",
        "subscriptionExpirationDateTime": "2019-02-01T01:01:01Z",
        "changeType": "updated",
        "resource": f"/app/calls/{CALL_URL_ID}",
        "resourceData": {"@odata.type": "#microsoft.graph.call", "state": state},
    }
    ev = parse(json.dumps({"value": [legacy]}).encode())[0].event
    assert ev.call_id == CALL
    assert ev.call_update.state == expected


def test_incoming_deadline_needs_the_incoming_state_only() -> None:
    cu = parse(body(call_note(CALL, {"state": "incoming"}, change="created")))[0].event.call_update
    assert cu.answer_deadline.ToDatetime(UTC) == NOW + timedelta(seconds=15)
    assert cu.direction == call_types_pb2.CALL_DIRECTION_UNSPECIFIED


@pytest.mark.parametrize(
    "garbage",
    [None, "x", True, [1]],
)
def test_call_fields_of_the_wrong_type_are_absent(garbage: Any) -> None:
    rd = {
        "state": "incoming",
        "direction": garbage,
        "source": garbage,
        "targets": [garbage, {"identity": garbage, "hidden": "true", "participantId": garbage}],
        "meetingInfo": garbage,
        "chatInfo": garbage,
        "requestedModalities": [garbage, "audio"],
        "callbackUri": garbage,
        "toneInfo": {"sequenceId": garbage, "tone": garbage},
        "incomingContext": garbage,
    }
    cu = parse(body(call_note(CALL, rd, change="created")))[0].event.call_update
    assert cu.state == calls_pb2.CALL_STATE_INCOMING
    assert cu.direction == call_types_pb2.CALL_DIRECTION_UNSPECIFIED
    assert not cu.HasField("source")
    assert not cu.HasField("meeting_info")
    assert len(cu.targets) == 1 and not cu.targets[0].hidden
    assert not cu.targets[0].HasField("identity")
    assert list(cu.requested_modalities)[-1] == call_types_pb2.MODALITY_AUDIO
    assert cu.tone_info.sequence_id == 0
    assert cu.tone_info.tone == call_types_pb2.TONE_UNSPECIFIED
    assert cu.answer_deadline.ToDatetime(UTC) == NOW + timedelta(seconds=15)
    cu.SerializeToString()
    # A whole resourceData of the wrong shape is never a 400.
    for rd2 in (garbage, [garbage]):
        parse(body({"resourceUrl": f"/communications/calls/{CALL}", "resourceData": rd2}))


# -- tones ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tone", "expected"),
    [
        *[(f"tone{d}", call_types_pb2.Tone.Value(f"TONE_{d}")) for d in range(10)],
        ("Tone7", call_types_pb2.TONE_7),
        ("star", call_types_pb2.TONE_STAR),
        ("POUND", call_types_pb2.TONE_POUND),
        ("a", call_types_pb2.TONE_A),
        ("B", call_types_pb2.TONE_B),
        ("c", call_types_pb2.TONE_C),
        ("d", call_types_pb2.TONE_D),
        ("flash", call_types_pb2.TONE_FLASH),
        ("tone10", call_types_pb2.TONE_UNSPECIFIED),
        ("#", call_types_pb2.TONE_UNSPECIFIED),
    ],
)
def test_tone_values(tone: str, expected: int) -> None:
    cu = parse(body(tone_note(CALL, 3, tone)))[0].event.call_update
    assert cu.state == calls_pb2.CALL_STATE_ESTABLISHED
    assert cu.tone_info == call_types_pb2.ToneInfo(sequence_id=3, tone=expected)


@pytest.mark.parametrize(
    ("seq", "expected"),
    [("12", 12), (12.0, 12), (" 9 ", 9), (2**62, 2**62), ("1.5", 0), (2**64, 0)],
)
def test_tone_sequence_id_leniently(seq: Any, expected: int) -> None:
    assert parse(body(tone_note(CALL, seq)))[0].event.call_update.tone_info.sequence_id == expected


def _tone_items(*spec: tuple[str, int]) -> list[ParsedNotification]:
    """Tone updates (call, seq); seq 0 means an operation update of the call instead."""
    notes = [
        tone_note(c, s) if s else packaged(c, [completion(str(uuid.uuid4()))]) for c, s in spec
    ]
    return parse(body(*notes))


def _order(items: Sequence[ParsedNotification]) -> list[tuple[str, int]]:
    return [(i.event.call_id[:1], i.event.call_update.tone_info.sequence_id) for i in items]


def test_tones_of_a_post_are_sorted_per_call_and_the_rest_keeps_its_place() -> None:
    a, b = "a" + CALL[1:], "b" + CALL[1:]
    items = _tone_items((a, 3), (a, 0), (b, 2), (a, 1), (b, 1), (a, 0), (a, 2), (b, 2))
    ordered = in_sequence(items)
    assert _order(ordered) == [
        ("a", 1),
        ("a", 0),
        ("b", 1),
        ("a", 2),
        ("b", 2),
        ("a", 0),
        ("a", 3),
        ("b", 2),
    ]
    # The untouched items are the very same objects, in place.
    assert ordered[1] is items[1] and ordered[5] is items[5]
    # Stable: the two tone 2s of b keep their relative order.
    assert ordered[4] is items[2] and ordered[7] is items[7]


def _entry(n: int, item: ParsedNotification) -> LogEntry:
    return LogEntry((n, 0), item.event)


def test_tone_marks_record_the_highest_forget_terminated_and_stay_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    marks = ToneMarks(max_calls=2)
    a, b, c = (x + CALL[1:] for x in "abc")
    key = (TENANT, a)
    for n, item in enumerate(parse(body(tone_note(a, 2), tone_note(a, 5), tone_note(b, 1)))):
        marks.observe(_entry(n, item))
    assert marks.highest(key) == 5
    changed = marks.changed(key)
    with caplog.at_level(logging.INFO, logger="commsgw.webhook"):
        marks.observe(_entry(9, parse(body(tone_note(a, 4)))[0]))
    assert marks.highest(key) == 5 and not changed.is_set()
    assert "tone 4 of call" in caplog.text and "after tone 5" in caplog.text
    marks.observe(_entry(10, parse(body(call_note(a, {"state": "terminated"}, "deleted")))[0]))
    assert marks.highest(key) == 0 and changed.is_set()
    marks.observe(_entry(11, parse(body(tone_note(a, 1)))[0]))
    marks.observe(_entry(12, parse(body(tone_note(c, 1)))[0]))
    assert marks.highest((TENANT, b)) == 0  # the least recently toned call was forgotten
    assert marks.highest(key) == marks.highest((TENANT, c)) == 1
    assert marks.highest(("other-tenant", c)) == 0


async def test_hold_waits_for_the_hub_and_gives_up_after_the_window() -> None:
    log = MemoryEventLog(max_events=100, max_age_s=60)
    hub = Hub(log, buffer=10)
    await hub.start()
    order = ToneOrder(hub, window_s=30)  # its marks follow the hub's dispatch
    held = asyncio.create_task(order.hold(parse(body(tone_note(CALL, 3)))))
    await _until(lambda: order.holding == 1)
    await log.append(parse(body(tone_note(CALL, 1))))
    # Woken by tone 1, it waits again (tone 2 is missing): a new event for the call.
    await _until(lambda: (TENANT, CALL) in order.marks._changed)
    assert not held.done()
    await log.append(parse(body(tone_note(CALL, 2))))
    await asyncio.wait_for(held, WAIT_S)
    assert order.holding == 0
    # Nothing missing: no wait at all; a gap waits for the window only.
    await asyncio.wait_for(order.hold(parse(body(tone_note(CALL, 3), tone_note(CALL, 4)))), 0.5)
    order.window_s = 0.05
    started = time.monotonic()
    await order.hold(parse(body(tone_note(CALL, 9))))
    assert time.monotonic() - started >= 0.05
    hub.close()


# -- end to end -----------------------------------------------------------------------------------


def _gateway(emulator: Emulator, **env: str) -> contextlib.AbstractAsyncContextManager[Gateway]:
    return running_gateway(gateway_settings(emulator, **env))


class _Client:
    """Posts signed notifications to a gateway and watches it over real gRPC."""

    def __init__(self, emulator: Emulator, gateway: Gateway) -> None:
        self.emulator = emulator
        self.gateway = gateway
        self.url = f"http://127.0.0.1:{gateway.http_port}{gateway.settings.webhook_path}"
        self.http = httpx.AsyncClient(timeout=60)
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}")
        self.stub = calls_pb2_grpc.CallsServiceStub(self.channel)

    async def post(self, *notes: dict[str, Any]) -> int:
        token = self.emulator.mint_notification_token(tenant_id=TENANT)
        r = await self.http.post(
            self.url,
            content=body(*notes),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        return r.status_code

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.channel.close()


@contextlib.asynccontextmanager
async def _client(emulator: Emulator, gateway: Gateway) -> AsyncIterator[_Client]:
    c = _Client(emulator, gateway)
    try:
        yield c
    finally:
        await c.aclose()


class _Watch:
    """A WatchOperations stream collecting events in the background."""

    def __init__(
        self, stub: calls_pb2_grpc.CallsServiceStub, request: calls_pb2.WatchOperationsRequest
    ) -> None:
        self.events: list[calls_pb2.Event] = []
        self.started = asyncio.Event()
        self._call = stub.WatchOperations(request)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for r in self._call:
                self.started.set()
                if r.WhichOneof("kind") == "event":
                    self.events.append(r.event)

    async def wait(self, n: int) -> list[calls_pb2.Event]:
        async with asyncio.timeout(WAIT_S):
            await self.started.wait()
        await _until(lambda: len(self.events) >= n)
        return self.events

    def close(self) -> None:
        self._call.cancel()


def _tones_watch(stub: calls_pb2_grpc.CallsServiceStub, call_id: str) -> _Watch:
    return _Watch(
        stub, calls_pb2.WatchOperationsRequest(call_ids=[call_id], include_call_updates=True)
    )


def _seqs(events: Sequence[calls_pb2.Event]) -> list[int]:
    return [e.call_update.tone_info.sequence_id for e in events]


@pytest.mark.e2e
async def test_packaged_completions_reach_an_operation_subscriber_once_each(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Any
) -> None:
    call_id = str(uuid.uuid4())
    op1, op2, marker = (str(uuid.uuid4()) for _ in range(3))
    watch = _Watch(
        stub,
        calls_pb2.WatchOperationsRequest(
            call_ids=[call_id], statuses=[calls_pb2.OPERATION_STATUS_COMPLETED]
        ),
    )
    try:
        await watch.started.wait()
        note = packaged(
            call_id.replace("-", "").upper(), [completion(op1, "x"), completion(op2, "y")]
        )
        assert (await poster.post([note])).status_code == 202
        got = await watch.wait(2)
        assert [e.operation_update.operation.id for e in got] == [op1, op2]
        assert [e.operation_update.operation.client_context for e in got] == ["x", "y"]
        # Graph redelivers the POST: nothing twice (the marker comes right after).
        assert (await poster.post([note])).status_code == 202
        assert (await poster.post([packaged(call_id, [completion(marker)])])).status_code == 202
        got = await watch.wait(3)
        assert [e.operation_update.operation.id for e in got] == [op1, op2, marker]
    finally:
        watch.close()


@pytest.mark.e2e
async def test_incoming_call_arrives_typed_with_its_answer_deadline(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Any
) -> None:
    call_id = str(uuid.uuid4())
    watch = _tones_watch(stub, call_id)
    try:
        await watch.started.wait()
        before = datetime.now(UTC).replace(microsecond=0)
        assert (
            await poster.post([incoming_call(call_id.replace("-", "").upper())])
        ).status_code == 202
        (ev,) = await watch.wait(1)
        cu = ev.call_update
        assert ev.call_id == call_id
        assert cu.state == calls_pb2.CALL_STATE_INCOMING
        assert cu.direction == call_types_pb2.CALL_DIRECTION_INCOMING
        assert cu.source.identity.user.display_name == "Test User"
        assert [t.participant_id for t in cu.targets] == ["p-bot", ""]
        assert cu.chat_info.thread_id == "19:meeting_x@thread.v2"
        assert cu.answer_deadline.ToDatetime(UTC) - ev.receive_time.ToDatetime(UTC) == timedelta(
            seconds=15
        )
        assert ev.receive_time.ToDatetime(UTC) >= before
    finally:
        watch.close()


@pytest.mark.e2e
async def test_tones_in_one_post_are_delivered_in_sequence(
    gateway: Gateway, stub: calls_pb2_grpc.CallsServiceStub, poster: Any
) -> None:
    call_id = str(uuid.uuid4())
    watch = _tones_watch(stub, call_id)
    try:
        await watch.started.wait()
        notes = [
            tone_note(call_id, 3, "tone3"),
            tone_note(call_id, 1, "star"),
            tone_note(call_id, 2, "b"),
        ]
        assert (await poster.post(notes)).status_code == 202
        got = await watch.wait(3)
        assert _seqs(got) == [1, 2, 3]
        assert [e.call_update.tone_info.tone for e in got] == [
            call_types_pb2.TONE_STAR,
            call_types_pb2.TONE_B,
            call_types_pb2.TONE_3,
        ]
    finally:
        watch.close()


@pytest.mark.e2e
async def test_tones_posted_out_of_order_are_delivered_in_order(emulator: Emulator) -> None:
    # A long window: tone 2 can only have gone out before its window because tone 1 came.
    async with (
        _gateway(emulator, COMMSGW_TONE_REORDER_WINDOW_S="30") as gw,
        _client(emulator, gw) as c,
    ):
        call_id = str(uuid.uuid4())
        watch = _tones_watch(c.stub, call_id)
        try:
            await watch.started.wait()
            started = time.monotonic()
            second = asyncio.create_task(c.post(tone_note(call_id, 2, "tone2")))
            assert gw.webhook.tones is not None
            await _until(lambda: gw.webhook.tones is not None and gw.webhook.tones.holding == 1)
            assert not second.done()  # held: no 202 before it is stored
            assert await c.post(tone_note(call_id, 1, "tone1")) == 202
            assert await second == 202
            assert time.monotonic() - started < 25
            got = await watch.wait(2)
            assert _seqs(got) == [1, 2]
            # Tone 3 is due at once.
            assert await c.post(tone_note(call_id, 3)) == 202
            assert _seqs(await watch.wait(3)) == [1, 2, 3]
        finally:
            watch.close()


@pytest.mark.e2e
async def test_a_missing_tone_is_released_after_the_window_and_a_late_one_still_delivered(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    window = 0.3
    async with (
        _gateway(emulator, COMMSGW_TONE_REORDER_WINDOW_S=str(window)) as gw,
        _client(emulator, gw) as c,
    ):
        assert gw.settings.tone_reorder_window_s == window
        call_id = str(uuid.uuid4())
        watch = _tones_watch(c.stub, call_id)
        try:
            await watch.started.wait()
            with caplog.at_level(logging.INFO, logger="commsgw"):
                started = time.monotonic()
                assert await c.post(tone_note(call_id, 2)) == 202
                assert time.monotonic() - started >= window
                assert _seqs(await watch.wait(1)) == [2]
                # Tone 1 comes after its window: delivered all the same, and logged.
                assert await c.post(tone_note(call_id, 1)) == 202
                assert _seqs(await watch.wait(2)) == [2, 1]
            assert "stored without tones 1..1" in caplog.text
            assert "tone 1 of call " + call_id + " delivered after tone 2" in caplog.text
        finally:
            watch.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
@pytest.mark.e2e
async def test_tone_order_across_two_gateways_sharing_a_redis_log(emulator: Emulator) -> None:
    prefix = f"commsgw-test-tones-{uuid.uuid4().hex[:12]}"
    env = {
        "COMMSGW_EVENT_LOG": REDIS,
        "COMMSGW_EVENT_LOG_KEY": prefix,
        "COMMSGW_TONE_REORDER_WINDOW_S": "30",
    }
    try:
        async with (
            _gateway(emulator, **env) as gw_a,
            _gateway(emulator, **env) as gw_b,
            _client(emulator, gw_a) as a,
            _client(emulator, gw_b) as b,
        ):
            call_id = str(uuid.uuid4())
            watches = [_tones_watch(a.stub, call_id), _tones_watch(b.stub, call_id)]
            try:
                for w in watches:
                    await w.started.wait()
                # Tone 2 reaches replica A first and is held there ...
                started = time.monotonic()
                second = asyncio.create_task(a.post(tone_note(call_id, 2, "pound")))
                await _until(
                    lambda: gw_a.webhook.tones is not None and gw_a.webhook.tones.holding == 1
                )
                # ... until replica A's hub reads tone 1, stored through replica B.
                assert await b.post(tone_note(call_id, 1, "star")) == 202
                assert await second == 202
                assert time.monotonic() - started < 25
                for w in watches:
                    assert _seqs(await w.wait(2)) == [1, 2]
            finally:
                for w in watches:
                    w.close()
    finally:
        await drop_keys(prefix)
