"""Tests of commsgw.notifications._parse: commsNotifications bodies -> contract Events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commsgw._errors import NotificationFormatError
from commsgw.notifications._parse import (
    ParsedNotification,
    dedup_key,
    normalize_id,
    parse_notifications,
)
from commsgw.notifications._webhook import http_status_of
from graphcomms.v1 import calls_pb2

TENANT = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"
TENANT_NORM = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CALL = "57dab8b1-894c-409a-b240-bd8beae78896"
OP = "0fe0623f-d628-42ed-b4bd-8ac290072cc5"
NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

# The documented example (cancelMediaProcessing page): a cancelled recordResponse.
CANCELLED_RECORD = b"""{
"@odata.type": "#microsoft.graph.commsNotifications",
"value": [
{
"@odata.type": "#microsoft.graph.commsNotification",
"changeType": "deleted",
"resourceUrl": "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/\
0FE0623FD62842EDB4BD8AC290072CC5",
"resourceData": {
"@odata.type": "#microsoft.graph.recordOperation",
"@odata.id": "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/\
0FE0623FD62842EDB4BD8AC290072CC5",
"@odata.etag": "W/\\"54451\\"",
"id": "0fe0623f-d628-42ed-b4bd-8ac290072cc5",
"clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
"status": "failed",
"resultInfo": {
"@odata.type": "#microsoft.graph.resultInfo",
"code": 400,
"subcode": 8508,
"message": "Action failed, the operation was cancelled."
},
"recordingLocation": "",
"recordingAccessToken": "",
"completionReason": "operationCanceled"
}
}
]
}"""


def doc(*elements: Any, odata_type: str | None = "#microsoft.graph.commsNotifications") -> bytes:
    d: dict[str, Any] = {"value": list(elements)}
    if odata_type is not None:
        d["@odata.type"] = odata_type
    return json.dumps(d).encode()


def parse(body: bytes) -> list[ParsedNotification]:
    return parse_notifications(body, tenant_id=TENANT, receive_time=NOW)


def one(body: bytes) -> calls_pb2.Event:
    items = parse(body)
    assert len(items) == 1
    return items[0].event


def op_element(rd: dict[str, Any], *, change: str = "updated", url: str | None = None) -> Any:
    return {
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": change,
        "resourceUrl": url or f"/communications/calls/{CALL}/operations/{OP}",
        "resourceData": rd,
    }


# -- normalize_id --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "57DAB8B1894C409AB240BD8BEAE78896",
        "57dab8b1894c409ab240bd8beae78896",
        "57DAB8B1-894C-409A-B240-BD8BEAE78896",
        "57dab8b1-894c-409a-b240-bd8beae78896",
        "{57DAB8B1-894C-409A-B240-BD8BEAE78896}",
        "{57DAB8B1894C409AB240BD8BEAE78896}",
        "  57DAB8B1894C409AB240BD8BEAE78896 ",
    ],
)
def test_normalize_id_guids(raw: str) -> None:
    assert normalize_id(raw) == CALL


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ""),
        ("  abc ", "abc"),
        ("not-a-guid", "not-a-guid"),
        ("57DAB8B1894C409AB240BD8BEAE7889", "57DAB8B1894C409AB240BD8BEAE7889"),  # 31 hex
        ("57DAB8B1894C409AB240BD8BEAE7889Z", "57DAB8B1894C409AB240BD8BEAE7889Z"),
        ("{abc}", "{abc}"),
        ("421f1100-4c2a-4a9e-bb8c-7ed5cf0e4e3f", "421f1100-4c2a-4a9e-bb8c-7ed5cf0e4e3f"),
    ],
)
def test_normalize_id_others(raw: str, expected: str) -> None:
    assert normalize_id(raw) == expected


# -- the documented example ----------------------------------------------------------------------


def test_documented_cancelled_record() -> None:
    items = parse(CANCELLED_RECORD)
    assert len(items) == 1
    item = items[0]
    ev = item.event
    assert ev.tenant_id == TENANT_NORM
    assert ev.call_id == CALL
    assert ev.change_type == calls_pb2.CHANGE_TYPE_DELETED
    assert ev.resource_url == (
        "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/"
        "0FE0623FD62842EDB4BD8AC290072CC5"
    )
    assert ev.receive_time.ToDatetime(tzinfo=UTC) == NOW
    assert ev.WhichOneof("kind") == "operation_update"
    op = ev.operation_update.operation
    assert op.id == OP
    assert op.type == calls_pb2.OPERATION_TYPE_RECORD
    assert op.status == calls_pb2.OPERATION_STATUS_FAILED
    assert op.client_context == "d45324c1-fcb5-430a-902c-f20af696537c"
    assert op.HasField("result_info")
    assert op.result_info.code == 400
    assert op.result_info.subcode == 8508
    assert op.result_info.message == "Action failed, the operation was cancelled."
    assert op.completion_reason == "operationCanceled"
    assert op.odata_type == "#microsoft.graph.recordOperation"
    assert op.recording_location == ""
    assert op.recording_access_token == ""
    assert item.operation_key == (TENANT_NORM, CALL, OP)
    assert len(item.dedup_key) == 16


def test_receive_time_defaults_to_now() -> None:
    before = datetime.now(UTC)
    ev = parse_notifications(CANCELLED_RECORD, tenant_id=TENANT)[0].event
    after = datetime.now(UTC)
    assert before <= ev.receive_time.ToDatetime(tzinfo=UTC) <= after


def test_bytes_like_bodies_accepted() -> None:
    a = parse(CANCELLED_RECORD)
    b = parse_notifications(bytearray(CANCELLED_RECORD), tenant_id=TENANT, receive_time=NOW)
    c = parse_notifications(memoryview(CANCELLED_RECORD), tenant_id=TENANT, receive_time=NOW)
    assert a == b == c


# -- operations ----------------------------------------------------------------------------------


def test_string_and_float_result_codes() -> None:
    ev = one(
        doc(
            op_element(
                {
                    "@odata.type": "#microsoft.graph.recordOperation",
                    "id": OP,
                    "status": "Completed",
                    "resultInfo": {"code": "200", "subcode": 8515.0, "message": "max"},
                    "recordingLocation": "https://example/rec",
                    "recordingAccessToken": "secret-token",
                    "completionReason": "maxRecordDurationReached",
                }
            )
        )
    )
    op = ev.operation_update.operation
    assert op.status == calls_pb2.OPERATION_STATUS_COMPLETED
    assert (op.result_info.code, op.result_info.subcode) == (200, 8515)
    assert op.recording_location == "https://example/rec"
    assert op.recording_access_token == "secret-token"
    assert op.completion_reason == "maxRecordDurationReached"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (400, 400),
        ("400", 400),
        (" 400 ", 400),
        ("400.0", 400),
        (400.0, 400),
        (400.5, 0),
        ("abc", 0),
        ("", 0),
        (True, 0),
        (None, 0),
        ({}, 0),
        ([400], 0),
        (2**31, 0),
        (-(2**31), -(2**31)),
        (2**31 - 1, 2**31 - 1),
        (10**30, 0),
        ("1e400", 0),
        ("nan", 0),
    ],
)
def test_result_code_lenient(value: Any, expected: int) -> None:
    ev = one(
        doc(
            op_element(
                {
                    "@odata.type": "#microsoft.graph.playPromptOperation",
                    "id": OP,
                    "resultInfo": {"code": value, "subcode": value},
                }
            )
        )
    )
    ri = ev.operation_update.operation.result_info
    assert (ri.code, ri.subcode) == (expected, expected)


def test_no_result_info_leaves_it_unset() -> None:
    ev = one(
        doc(
            op_element(
                {
                    "@odata.type": "#microsoft.graph.playPromptOperation",
                    "id": OP,
                    "status": "running",
                }
            )
        )
    )
    op = ev.operation_update.operation
    assert not op.HasField("result_info")
    assert op.status == calls_pb2.OPERATION_STATUS_RUNNING
    assert op.type == calls_pb2.OPERATION_TYPE_PLAY_PROMPT


@pytest.mark.parametrize(
    ("odata_type", "expected"),
    [
        (
            "#microsoft.graph.addLargeGalleryViewOperation",
            calls_pb2.OPERATION_TYPE_ADD_LARGE_GALLERY_VIEW,
        ),
        (
            "#microsoft.graph.cancelMediaProcessingOperation",
            calls_pb2.OPERATION_TYPE_CANCEL_MEDIA_PROCESSING,
        ),
        (
            "#microsoft.graph.inviteParticipantsOperation",
            calls_pb2.OPERATION_TYPE_INVITE_PARTICIPANTS,
        ),
        ("#microsoft.graph.muteParticipantOperation", calls_pb2.OPERATION_TYPE_MUTE_PARTICIPANT),
        ("#microsoft.graph.playPromptOperation", calls_pb2.OPERATION_TYPE_PLAY_PROMPT),
        ("#microsoft.graph.recordOperation", calls_pb2.OPERATION_TYPE_RECORD),
        ("#microsoft.graph.sendDtmfTonesOperation", calls_pb2.OPERATION_TYPE_SEND_DTMF_TONES),
        ("#microsoft.graph.startHoldMusicOperation", calls_pb2.OPERATION_TYPE_START_HOLD_MUSIC),
        ("#microsoft.graph.stopHoldMusicOperation", calls_pb2.OPERATION_TYPE_STOP_HOLD_MUSIC),
        ("#microsoft.graph.subscribeToToneOperation", calls_pb2.OPERATION_TYPE_SUBSCRIBE_TO_TONE),
        (
            "#microsoft.graph.unmuteParticipantOperation",
            calls_pb2.OPERATION_TYPE_UNMUTE_PARTICIPANT,
        ),
        (
            "#microsoft.graph.updateRecordingStatusOperation",
            calls_pb2.OPERATION_TYPE_UPDATE_RECORDING_STATUS,
        ),
        ("recordOperation", calls_pb2.OPERATION_TYPE_RECORD),
        ("#MICROSOFT.GRAPH.RECORDOPERATION", calls_pb2.OPERATION_TYPE_RECORD),
        ("microsoft.graph.recordOperation", calls_pb2.OPERATION_TYPE_RECORD),
    ],
)
def test_operation_types(odata_type: str, expected: int) -> None:
    ev = one(doc(op_element({"@odata.type": odata_type, "id": OP, "status": "notStarted"})))
    op = ev.operation_update.operation
    assert op.type == expected
    assert op.odata_type == odata_type
    assert op.status == calls_pb2.OPERATION_STATUS_NOT_STARTED


def test_unknown_operation_subtype_kept() -> None:
    ev = one(
        doc(
            op_element(
                {"@odata.type": "#microsoft.graph.teleportOperation", "id": OP, "status": "running"}
            )
        )
    )
    assert ev.WhichOneof("kind") == "operation_update"
    op = ev.operation_update.operation
    assert op.type == calls_pb2.OPERATION_TYPE_UNSPECIFIED
    assert op.odata_type == "#microsoft.graph.teleportOperation"
    assert op.status == calls_pb2.OPERATION_STATUS_RUNNING


def test_operation_by_url_without_type_and_id_from_url() -> None:
    url = (
        "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/"
        "0FE0623FD62842EDB4BD8AC290072CC5"
    )
    item = parse(doc({"changeType": "deleted", "resourceUrl": url}))[0]
    op = item.event.operation_update.operation
    assert item.event.WhichOneof("kind") == "operation_update"
    assert op.id == OP
    assert op.type == calls_pb2.OPERATION_TYPE_UNSPECIFIED
    assert op.status == calls_pb2.OPERATION_STATUS_UNSPECIFIED
    assert item.operation_key == (TENANT_NORM, CALL, OP)


def test_operation_type_with_other_url_is_an_operation() -> None:
    # The operation id comes from resourceData when the URL does not carry it.
    ev = one(
        doc(
            op_element(
                {
                    "@odata.type": "#microsoft.graph.playPromptOperation",
                    "id": OP.upper().replace("-", ""),
                },
                url=f"/communications/calls/{CALL}",
            )
        )
    )
    assert ev.operation_update.operation.id == OP


def test_unknown_status_and_change_type() -> None:
    ev = one(
        doc(
            op_element(
                {"@odata.type": "#microsoft.graph.recordOperation", "id": OP, "status": "exploded"},
                change="teleported",
            )
        )
    )
    assert ev.change_type == calls_pb2.CHANGE_TYPE_UNSPECIFIED
    assert ev.operation_update.operation.status == calls_pb2.OPERATION_STATUS_UNSPECIFIED


def test_change_type_case_insensitive() -> None:
    ev = one(
        doc(
            op_element(
                {"@odata.type": "#microsoft.graph.recordOperation", "id": OP}, change="CREATED"
            )
        )
    )
    assert ev.change_type == calls_pb2.CHANGE_TYPE_CREATED


def test_wrong_json_types_never_crash() -> None:
    ev = one(
        doc(
            {
                "changeType": 5,
                "resourceUrl": f"/communications/calls/{CALL}/operations/{OP}",
                "resourceData": {
                    "@odata.type": 7,
                    "id": {"x": 1},
                    "status": 5,
                    "clientContext": {},
                    "resultInfo": "oops",
                    "recordingLocation": ["a"],
                    "recordingAccessToken": None,
                    "completionReason": 12,
                },
            }
        )
    )
    op = ev.operation_update.operation
    assert ev.change_type == calls_pb2.CHANGE_TYPE_UNSPECIFIED
    assert op.id == OP  # from the URL
    assert op.odata_type == ""
    assert op.status == calls_pb2.OPERATION_STATUS_UNSPECIFIED
    assert op.client_context == ""
    assert not op.HasField("result_info")
    assert op.recording_location == ""
    assert op.completion_reason == "12"


def test_numbers_and_booleans_as_strings() -> None:
    ev = one(
        doc(
            op_element(
                {
                    "@odata.type": "#microsoft.graph.recordOperation",
                    "id": OP,
                    "clientContext": 12.5,
                    "completionReason": True,
                    "resultInfo": {"code": 200, "message": 3},
                }
            )
        )
    )
    op = ev.operation_update.operation
    assert op.client_context == "12.5"
    assert op.completion_reason == "true"
    assert op.result_info.message == "3"


def test_operation_without_any_id_has_no_operation_key() -> None:
    item = parse(
        doc(
            op_element(
                {"@odata.type": "#microsoft.graph.recordOperation"},
                url=f"/communications/calls/{CALL}",
            )
        )
    )[0]
    assert item.event.WhichOneof("kind") == "operation_update"
    assert item.event.operation_update.operation.id == ""
    assert item.operation_key is None


def test_huge_strings_are_fine() -> None:
    big = "x" * 2_000_000
    ev = one(
        doc(
            op_element(
                {"@odata.type": "#microsoft.graph.recordOperation", "id": OP, "clientContext": big}
            )
        )
    )
    assert ev.operation_update.operation.client_context == big


# -- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
        "https://graph.microsoft.com/v1.0/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
        "/v1.0/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5/",
        "/beta/Communications/Calls/57dab8b1-894c-409a-b240-bd8beae78896/Operations/0fe0623f-d628-42ed-b4bd-8ac290072cc5?x=1",
        "communications/calls/{57DAB8B1-894C-409A-B240-BD8BEAE78896}/operations/0FE0623FD62842EDB4BD8AC290072CC5#frag",
        "/app/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
    ],
)
def test_url_forms(url: str) -> None:
    ev = one(doc({"changeType": "updated", "resourceUrl": url}))
    assert ev.call_id == CALL
    assert ev.resource_url == url
    assert ev.WhichOneof("kind") == "operation_update"
    assert ev.operation_update.operation.id == OP


def test_legacy_resource_key() -> None:
    url = "/app/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5"
    ev = one(
        doc(
            {
                "changeType": "deleted",
                "resource": url,
                "resourceData": {
                    "@odata.type": "#microsoft.graph.playPromptOperation",
                    "status": "completed",
                },
            }
        )
    )
    assert ev.resource_url == url
    assert ev.call_id == CALL
    op = ev.operation_update.operation
    assert op.id == OP
    assert op.type == calls_pb2.OPERATION_TYPE_PLAY_PROMPT
    assert op.status == calls_pb2.OPERATION_STATUS_COMPLETED


def test_resource_url_wins_over_resource() -> None:
    ev = one(
        doc(
            {
                "resourceUrl": f"/communications/calls/{CALL}",
                "resource": "/communications/calls/other",
            }
        )
    )
    assert ev.resource_url == f"/communications/calls/{CALL}"
    assert ev.call_id == CALL


# -- calls ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("incoming", calls_pb2.CALL_STATE_INCOMING),
        ("establishing", calls_pb2.CALL_STATE_ESTABLISHING),
        ("established", calls_pb2.CALL_STATE_ESTABLISHED),
        ("hold", calls_pb2.CALL_STATE_HOLD),
        ("transferring", calls_pb2.CALL_STATE_TRANSFERRING),
        ("transferAccepted", calls_pb2.CALL_STATE_TRANSFER_ACCEPTED),
        ("TRANSFERACCEPTED", calls_pb2.CALL_STATE_TRANSFER_ACCEPTED),
        ("redirecting", calls_pb2.CALL_STATE_REDIRECTING),
        ("terminating", calls_pb2.CALL_STATE_TERMINATING),
        ("terminated", calls_pb2.CALL_STATE_TERMINATED),
        ("warping", calls_pb2.CALL_STATE_UNSPECIFIED),
        (3, calls_pb2.CALL_STATE_UNSPECIFIED),
    ],
)
def test_call_states(state: Any, expected: int) -> None:
    ev = one(
        doc(
            {
                "changeType": "updated",
                "resourceUrl": "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896",
                "resourceData": {"@odata.type": "#microsoft.graph.call", "state": state},
            }
        )
    )
    assert ev.WhichOneof("kind") == "call_update"
    assert ev.call_id == CALL
    assert ev.call_update.state == expected
    assert ev.call_update.odata_type == "#microsoft.graph.call"
    assert not ev.call_update.HasField("result_info")


def test_call_terminated_deleted() -> None:
    items = parse(
        doc(
            {
                "@odata.type": "#microsoft.graph.commsNotification",
                "changeType": "deleted",
                "resourceUrl": f"/communications/calls/{CALL}",
                "resourceData": {
                    "@odata.type": "#microsoft.graph.call",
                    "id": CALL,
                    "state": "terminated",
                    "resultInfo": {"code": 200, "subcode": 5001, "message": "Call ended"},
                },
            }
        )
    )
    ev = items[0].event
    assert ev.change_type == calls_pb2.CHANGE_TYPE_DELETED
    assert ev.call_update.state == calls_pb2.CALL_STATE_TERMINATED
    ri = ev.call_update.result_info
    assert (ri.code, ri.subcode, ri.message) == (200, 5001, "Call ended")
    assert items[0].operation_key is None


def test_call_deleted_without_resource_data() -> None:
    ev = one(
        doc(
            {
                "changeType": "deleted",
                "resourceUrl": "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/",
            }
        )
    )
    assert ev.WhichOneof("kind") == "call_update"
    assert ev.call_id == CALL
    assert ev.call_update.state == calls_pb2.CALL_STATE_UNSPECIFIED


def test_call_id_from_resource_data_when_url_has_none() -> None:
    ev = one(
        doc(
            {
                "changeType": "updated",
                "resourceUrl": "/communications/calls",
                "resourceData": {
                    "@odata.type": "#microsoft.graph.call",
                    "id": "57DAB8B1894C409AB240BD8BEAE78896",
                    "state": "established",
                },
            }
        )
    )
    assert ev.call_id == CALL
    assert ev.call_update.state == calls_pb2.CALL_STATE_ESTABLISHED


# -- other ---------------------------------------------------------------------------------------


def test_participants_are_other_with_raw_json() -> None:
    element = {
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "updated",
        "resourceUrl": f"/communications/calls/{CALL}/participants",
        "resourceData": [
            {
                "@odata.type": "#microsoft.graph.participant",
                "id": "p1",
                "info": {"identity": {"user": {"id": "u1", "displayName": "Zoë ☎"}}},
                "isMuted": True,
                "mediaStreams": [{"mediaType": "audio", "direction": "sendReceive"}],
            }
        ],
        "extra": {"nested": [1, 2.5, None, "x"]},
    }
    body = ('{"value": [' + json.dumps(element, ensure_ascii=False) + "]}").encode()
    item = parse(body)[0]
    ev = item.event
    assert ev.WhichOneof("kind") == "other"
    assert ev.call_id == CALL
    assert ev.change_type == calls_pb2.CHANGE_TYPE_UPDATED
    assert ev.other.odata_type == ""  # resourceData is a list
    assert json.loads(ev.other.raw_json) == element
    assert ev.other.raw_json == json.dumps(element, ensure_ascii=False)  # exactly as sent
    assert item.operation_key is None


def test_single_participant_keeps_its_type() -> None:
    ev = one(
        doc(
            {
                "changeType": "created",
                "resourceUrl": f"/communications/calls/{CALL}/participants/p1",
                "resourceData": {"@odata.type": "#microsoft.graph.participant", "id": "p1"},
            }
        )
    )
    assert ev.WhichOneof("kind") == "other"
    assert ev.other.odata_type == "#microsoft.graph.participant"


def test_notification_without_call_id_is_other_with_empty_call_id() -> None:
    element = {
        "changeType": "updated",
        "resourceUrl": "/communications/onlineMeetings/abc",
        "resourceData": {
            "@odata.type": "#microsoft.graph.recordOperation",
            "id": OP,
            "status": "failed",
        },
    }
    ev = one(doc(element))
    assert ev.call_id == ""
    assert ev.WhichOneof("kind") == "other"
    assert ev.other.odata_type == "#microsoft.graph.recordOperation"
    assert json.loads(ev.other.raw_json) == element


def test_resource_data_scalar_is_other() -> None:
    ev = one(
        doc(
            {
                "resourceUrl": f"/communications/calls/{CALL}/operations/{OP}",
                "resourceData": "weird",
            }
        )
    )
    assert ev.WhichOneof("kind") == "other"
    assert ev.call_id == CALL


# -- documents -----------------------------------------------------------------------------------


def test_several_notifications_keep_order() -> None:
    elements = [
        {
            "changeType": "updated",
            "resourceUrl": f"/communications/calls/{CALL}",
            "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "establishing"},
        },
        {
            "changeType": "updated",
            "resourceUrl": f"/communications/calls/{CALL}",
            "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "established"},
        },
        op_element(
            {"@odata.type": "#microsoft.graph.playPromptOperation", "id": OP, "status": "completed"}
        ),
        {
            "changeType": "updated",
            "resourceUrl": f"/communications/calls/{CALL}/participants",
            "resourceData": [],
        },
    ]
    items = parse(doc(*elements))
    kinds = [i.event.WhichOneof("kind") for i in items]
    assert kinds == ["call_update", "call_update", "operation_update", "other"]
    assert items[0].event.call_update.state == calls_pb2.CALL_STATE_ESTABLISHING
    assert items[1].event.call_update.state == calls_pb2.CALL_STATE_ESTABLISHED
    assert len({i.dedup_key for i in items}) == 4
    assert all(i.event.receive_time == items[0].event.receive_time for i in items)


def test_empty_value_is_valid() -> None:
    assert parse(b'{"value": []}') == []
    assert parse(doc()) == []


@pytest.mark.parametrize("odata_type", [None, "#microsoft.graph.somethingElse", 5])
def test_document_odata_type_not_checked(odata_type: Any) -> None:
    body = json.dumps({"@odata.type": odata_type, "value": [op_element({"id": OP})]}).encode()
    if odata_type is None:
        body = json.dumps({"value": [op_element({"id": OP})]}).encode()
    assert len(parse(body)) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"value": [{"resourceUrl": "/communications/calls/\xff"}]}', "UTF-8"),
        (b'{"x": "\xc3", "value": []}', "UTF-8"),
        (b"{", "not valid JSON"),
        (b"[]", "commsNotifications"),
        (b'"value"', "commsNotifications"),
        (b"null", "commsNotifications"),
        (b"{}", "value"),
        (b'{"value": null}', "value"),
        (b'{"value": {}}', "value"),
        (b'{"value": "x"}', "value"),
        (b'{"value": [1]}', "value[0] is not an object"),
        (b'{"value": [null]}', "value[0] is not an object"),
        (b'{"value": [{"resourceUrl": "/communications/calls/x"}, []]}', "value[1]"),
        (b'{"value": [{"changeType": "updated"}]}', "resourceUrl"),
        (b'{"value": [{"resourceUrl": 5}]}', "resourceUrl"),
        (b'{"value": [{"resourceUrl": "  "}]}', "resourceUrl"),
        (b'{"value": [{"resourceUrl": "/x"}]} trailing', "not valid JSON"),
        (b'{"value": [NaN]}', "not valid JSON"),
    ],
)
def test_malformed_bodies(body: bytes, fragment: str) -> None:
    with pytest.raises(NotificationFormatError) as exc:
        parse(body)
    assert fragment in exc.value.message
    assert http_status_of(exc.value) == 400


def test_access_token_never_in_error_message() -> None:
    body = (
        b'{"value": [{"resourceUrl": "/communications/calls/x/operations/y", "resourceData": '
        b'{"recordingAccessToken": "TOPSECRET"}}, {"resourceData": '
        b'{"recordingAccessToken": "TOPSECRET"}}]}'
    )
    with pytest.raises(NotificationFormatError) as exc:
        parse(body)
    assert "TOPSECRET" not in str(exc.value)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting_is_a_format_error(depth: int) -> None:
    with pytest.raises(NotificationFormatError):
        parse(b"[" * depth + b"]" * depth)
    with pytest.raises(NotificationFormatError):
        parse(b'{"value": [' + b"[" * depth + b"]" * depth + b"]}")
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    with pytest.raises(NotificationFormatError):
        parse(
            b'{"value": [{"resourceUrl": "/communications/calls/x", "resourceData": '
            + nested
            + b"}]}"
        )
    with pytest.raises(NotificationFormatError):
        parse(b'{"x": ' + b"[" * depth + b"]" * depth + b', "value": []}')


def test_moderate_nesting_is_kept() -> None:
    nested: Any = 1
    for _ in range(50):
        nested = {"a": [nested]}
    ev = one(
        doc({"resourceUrl": f"/communications/calls/{CALL}/participants", "resourceData": nested})
    )
    assert json.loads(ev.other.raw_json)["resourceData"] == nested


# -- dedup keys ----------------------------------------------------------------------------------


def test_dedup_key_equal_for_same_content_any_key_order() -> None:
    a = (
        b'{"changeType":"updated","resourceUrl":"/communications/calls/x",'
        b'"resourceData":{"a":1,"b":[1,{"c":2,"d":3}]}}'
    )
    b = (
        b'{ "resourceData": { "b": [1, {"d": 3, "c": 2}], "a": 1 },\n'
        b' "resourceUrl": "/communications/calls/x", "changeType": "updated" }'
    )
    assert dedup_key(TENANT, a) == dedup_key(TENANT, b)
    assert dedup_key(TENANT, a) == dedup_key(TENANT, msgspec.json.decode(b))
    # Upper/lower-case GUID tenants are the same tenant.
    assert dedup_key(TENANT, a) == dedup_key(TENANT_NORM, a)
    # ... and the parser's keys agree.
    pa = parse(b'{"value": [' + a + b"]}")[0]
    pb = parse(b'{"value": [' + b + b"]}")[0]
    assert pa.dedup_key == pb.dedup_key == dedup_key(TENANT, a)
    assert len(pa.dedup_key) == 16


def test_dedup_key_differs_otherwise() -> None:
    a = {"changeType": "updated", "resourceUrl": "/communications/calls/x"}
    b = {"changeType": "deleted", "resourceUrl": "/communications/calls/x"}
    assert dedup_key(TENANT, a) != dedup_key(TENANT, b)
    assert dedup_key(TENANT, a) != dedup_key("other-tenant", a)
    assert dedup_key(TENANT, {"x": 1}) != dedup_key(TENANT, {"x": 1.0})
    assert dedup_key(TENANT, {"x": "1"}) != dedup_key(TENANT, {"x": 1})
    # Same content in one POST twice: same key (the caller drops the second).
    items = parse(doc(a, b, a))
    assert items[0].dedup_key == items[2].dedup_key != items[1].dedup_key


def test_dedup_key_of_invalid_json_bytes_is_stable() -> None:
    assert dedup_key(TENANT, b"{not json") == dedup_key(TENANT, b"{not json")
    assert dedup_key(TENANT, b"{not json") != dedup_key(TENANT, b"{not json!")


def test_dedup_key_rejects_non_json_objects() -> None:
    with pytest.raises(TypeError):
        dedup_key(TENANT, {"x": object()})


# -- properties ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)

element_like = st.fixed_dictionaries(
    {},
    optional={
        "@odata.type": st.sampled_from(["#microsoft.graph.commsNotification"]) | json_values,
        "changeType": st.sampled_from(["created", "updated", "deleted", "Deleted"]) | json_values,
        "resourceUrl": st.sampled_from(
            [
                f"/communications/calls/{CALL}",
                f"/communications/calls/{CALL}/operations/{OP}",
                f"/communications/calls/{CALL}/participants",
                "/communications/calls//operations/",
                "/calls",
                "https://x/",
                "",
            ]
        )
        | json_values,
        "resource": json_values,
        "resourceData": st.fixed_dictionaries(
            {},
            optional={
                "@odata.type": st.sampled_from(
                    ["#microsoft.graph.call", "#microsoft.graph.recordOperation", "x"]
                )
                | json_values,
                "id": st.text() | json_values,
                "status": st.sampled_from(["running", "failed"]) | json_values,
                "state": st.sampled_from(["established"]) | json_values,
                "resultInfo": st.fixed_dictionaries(
                    {},
                    optional={"code": json_values, "subcode": json_values, "message": json_values},
                )
                | json_values,
                "clientContext": json_values,
                "recordingAccessToken": json_values,
            },
        )
        | json_values,
    },
)


def _check(body: bytes) -> None:
    try:
        result = parse(body)
    except NotificationFormatError:
        return
    assert isinstance(result, list)
    for item in result:
        assert isinstance(item, ParsedNotification)
        assert item.event.WhichOneof("kind") in ("operation_update", "call_update", "other")
        item.event.SerializeToString()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_parses_or_format_error(value: Any) -> None:
    _check(json.dumps(value).encode())
    _check(json.dumps({"value": value}).encode())
    _check(json.dumps({"value": [value]}).encode())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(element_like, max_size=3))
def test_notification_like_documents_parse_or_format_error(elements: list[Any]) -> None:
    _check(json.dumps({"value": elements}).encode())
    _check(json.dumps({"value": elements}, ensure_ascii=False).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_format_error(data: bytes) -> None:
    _check(data)
    _check(b'{"value": [' + data + b"]}")
    _check(
        b'{"value": [{"resourceUrl": "/communications/calls/x", "resourceData": ' + data + b"}]}"
    )


@settings(max_examples=100, deadline=None)
@given(json_values, st.randoms(use_true_random=False))
def test_dedup_key_ignores_key_order(value: Any, rnd: Any) -> None:
    def shuffle(v: Any) -> Any:
        if isinstance(v, dict):
            items = list(v.items())
            rnd.shuffle(items)
            return {k: shuffle(x) for k, x in items}
        if isinstance(v, list):
            return [shuffle(x) for x in v]
        return v

    assert dedup_key(TENANT, json.dumps(value).encode()) == dedup_key(
        TENANT, json.dumps(shuffle(value)).encode()
    )
    assert dedup_key(TENANT, value) == dedup_key(TENANT, json.dumps(value).encode())
