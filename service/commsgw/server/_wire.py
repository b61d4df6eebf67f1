"""Bytes on the wire: lenient request decoding and the pre-serialised watch responses.

A WatchOperationsResponse is written by hand around the event's bytes, which are serialised
once per event and shared by every subscriber it goes to (protobuf would copy and re-encode the
event for each). The encoding is protobuf's: field 1 (resume_token, length-delimited), then
field 2 (event) or field 3 (bookmark), in field order, as `SerializeToString` writes them; a
test compares the two byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from commsgw.eventlog import WatchItem
from graphcomms.v1 import calls_pb2

_RESUME_TOKEN_TAG = b"\x0a"  # field 1, wire type 2
_EVENT_TAG = b"\x12"  # field 2, wire type 2
_BOOKMARK_TAG = b"\x1a"  # field 3, wire type 2
_BATCH_TAG = b"\x22"  # field 4, wire type 2


def varint(n: int) -> bytes:
    """`n` (>= 0) as a protobuf base-128 varint."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_watch_response(token: str, item: WatchItem, *, recordings: bool = True) -> bytes:
    """A serialised WatchOperationsResponse for `item` positioned at `token`. Without
    `recordings` the event's recording_access_token is left out."""
    t = token.encode()
    head = _RESUME_TOKEN_TAG + varint(len(t)) + t
    if item.entry is not None:
        payload = item.entry.payload if recordings else item.entry.redacted_payload
        return head + _EVENT_TAG + varint(len(payload)) + payload
    bookmark = calls_pb2.Bookmark(kind=item.bookmark).SerializeToString()  # type: ignore[arg-type]
    return head + _BOOKMARK_TAG + varint(len(bookmark)) + bookmark


def encode_watch_batch(token: str, items: Iterable[bytes]) -> bytes:
    """A serialised WatchOperationsResponse whose `batch` holds `items` (each a serialised
    single-event response, from `encode_watch_response`), positioned at `token`."""
    t = token.encode()
    parts = [_RESUME_TOKEN_TAG, varint(len(t)), t]
    for item in items:
        parts += (_BATCH_TAG, varint(len(item)), item)
    return b"".join(parts)


def serialize(message: Any) -> bytes:
    """The response serializer: messages, or bytes already serialised (watch responses)."""
    if isinstance(message, bytes):
        return message
    data: bytes = message.SerializeToString()
    return data


class MalformedRequest:
    """Stands for a request whose bytes are not a valid message (corrupt wire format, invalid
    UTF-8 in a string field): the interceptor answers INVALID_ARGUMENT instead of letting the
    deserializer's exception reach the caller as UNKNOWN."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def lenient_deserializer(message_type: Any) -> Callable[[bytes], Any]:
    """`message_type.FromString`, returning a MalformedRequest instead of raising."""
    name = message_type.DESCRIPTOR.name

    def deserialize(data: bytes) -> Any:
        try:
            return message_type.FromString(data)
        except Exception as exc:  # DecodeError, or anything the C parser raises
            what = str(exc).rsplit(": ", 1)[-1][:120] if str(exc) else type(exc).__name__
            return MalformedRequest(f"the request is not a valid {name}: {what}")

    return deserialize
