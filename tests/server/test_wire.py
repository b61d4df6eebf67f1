"""The watch wire encoder (commsgw.server._wire): its bytes are protobuf's own, byte for byte,
for events (small and large, whose lengths need multi-byte varints), for bookmarks, and for
the redacted form that leaves out recording_access_token."""

from __future__ import annotations

import pytest
from google.protobuf import wrappers_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from commsgw.eventlog import LogEntry, WatchItem
from commsgw.eventlog._base import encode_token
from commsgw.server._wire import encode_watch_batch, encode_watch_response, varint
from graphcomms.v1 import calls_pb2

TOKEN = encode_token("mem-0123456789abcdef0123456789abcdef", (42, 0))
CALL = "57dab8b1-894c-409a-b240-bd8beae78896"


def record_event(*, ctx: str = "r1", secret: str = "", url: str = "") -> calls_pb2.Event:
    return calls_pb2.Event(
        tenant_id="72f988bf-86f1-41af-91ab-2d7cd011db47",
        call_id=CALL,
        change_type=calls_pb2.CHANGE_TYPE_DELETED,
        resource_url=url or f"/communications/calls/{CALL}/operations/x",
        operation_update=calls_pb2.OperationUpdate(
            operation=calls_pb2.Operation(
                id="0fe0623f-d628-42ed-b4bd-8ac290072cc5",
                type=calls_pb2.OPERATION_TYPE_RECORD,
                status=calls_pb2.OPERATION_STATUS_COMPLETED,
                client_context=ctx,
                result_info=calls_pb2.ResultInfo(code=200, subcode=8515, message="max"),
                recording_location="https://media.example/rec.wav" if secret else "",
                recording_access_token=secret,
            )
        ),
    )


def protobuf_event(token: str, event: calls_pb2.Event) -> bytes:
    return calls_pb2.WatchOperationsResponse(resume_token=token, event=event).SerializeToString()


def ours(token: str, event: calls_pb2.Event, *, recordings: bool = True) -> bytes:
    item = WatchItem((42, 0), LogEntry((42, 0), event))
    return encode_watch_response(token, item, recordings=recordings)


@pytest.mark.parametrize(
    "size", [0, 1, 100, 127, 128, 200, 16_383, 16_384, 70_000, 2_200_000], ids=lambda n: f"{n}"
)
def test_events_of_every_size(size: int) -> None:
    event = record_event(ctx="x" * size)
    assert ours(TOKEN, event) == protobuf_event(TOKEN, event)


@pytest.mark.parametrize("length", [1, 127, 128, 300, 20_000])
def test_tokens_of_every_length(length: int) -> None:
    token = "t" * length
    event = record_event()
    assert ours(token, event) == protobuf_event(token, event)


def test_a_call_update_and_an_other() -> None:
    for event in (
        calls_pb2.Event(
            call_id=CALL, call_update=calls_pb2.CallUpdate(state=calls_pb2.CALL_STATE_TERMINATED)
        ),
        calls_pb2.Event(call_id=CALL, other=calls_pb2.OtherNotification(raw_json="{}" * 100)),
        calls_pb2.Event(),  # nothing set: an empty event message
    ):
        assert ours(TOKEN, event) == protobuf_event(TOKEN, event)


@pytest.mark.parametrize("kind", list(calls_pb2.BookmarkKind.values()))
def test_bookmarks(kind: int) -> None:
    item = WatchItem((42, 0), None, kind)
    expected = calls_pb2.WatchOperationsResponse(
        resume_token=TOKEN,
        bookmark=calls_pb2.Bookmark(kind=kind),  # type: ignore[arg-type]
    ).SerializeToString()
    assert encode_watch_response(TOKEN, item) == expected
    assert encode_watch_response(TOKEN, item, recordings=False) == expected


def test_without_recordings_the_access_token_is_left_out() -> None:
    event = record_event(secret="rec-secret-42", ctx="c" * 300)
    redacted = calls_pb2.Event()
    redacted.CopyFrom(event)
    redacted.operation_update.operation.recording_access_token = ""
    assert ours(TOKEN, event) == protobuf_event(TOKEN, event)
    got = ours(TOKEN, event, recordings=False)
    assert got == protobuf_event(TOKEN, redacted)
    assert b"rec-secret-42" not in got
    parsed = calls_pb2.WatchOperationsResponse.FromString(got)
    assert parsed.event.operation_update.operation.recording_location  # the rest is there


def test_without_a_token_to_leave_out_the_redacted_form_is_the_same() -> None:
    event = record_event()
    assert ours(TOKEN, event, recordings=False) == ours(TOKEN, event)


events = st.builds(
    record_event,
    ctx=st.text(max_size=300),
    secret=st.text(max_size=40),
    url=st.text(max_size=200),
)


@settings(max_examples=200)
@given(events, st.text(min_size=1, max_size=300), st.booleans())
def test_any_event(event: calls_pb2.Event, token: str, recordings: bool) -> None:
    expected = calls_pb2.Event()
    expected.CopyFrom(event)
    if not recordings:
        expected.operation_update.operation.recording_access_token = ""
    assert ours(token, event, recordings=recordings) == protobuf_event(token, expected)


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (16_384, b"\x80\x80\x01"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
    ],
)
def test_varint(n: int, encoded: bytes) -> None:
    assert varint(n) == encoded


@given(st.integers(min_value=1, max_value=2**64 - 1))
def test_varint_is_protobufs(n: int) -> None:
    # UInt64Value: field 1 as a varint (tag 0x08), the number as protobuf encodes it.
    assert b"\x08" + varint(n) == wrappers_pb2.UInt64Value(value=n).SerializeToString()


@pytest.mark.parametrize("n", [2, 3, 50])
def test_a_batch_is_protobufs_own_bytes(n: int) -> None:
    items = [
        WatchItem((42 + i, 0), LogEntry((42 + i, 0), record_event(ctx=f"c{i}" * (i + 1))))
        for i in range(n)
    ]
    tokens = [encode_token("mem-0123456789abcdef0123456789abcdef", it.position) for it in items]
    singles = [encode_watch_response(tok, it) for tok, it in zip(tokens, items, strict=True)]
    expected = calls_pb2.WatchOperationsResponse(
        resume_token=tokens[-1],
        batch=[
            calls_pb2.WatchOperationsResponse(resume_token=tok, event=it.entry.event)
            for tok, it in zip(tokens, items, strict=True)
            if it.entry is not None
        ],
    ).SerializeToString()
    assert encode_watch_batch(tokens[-1], singles) == expected
