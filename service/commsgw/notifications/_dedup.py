"""Dedup keys: a digest of a notification's tenant and its canonical JSON.

Canonical JSON has object keys sorted at every level and no whitespace, so the same
notification delivered twice gives the same key whatever Graph's key order or whitespace.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec

from commsgw._ids import normalize_id
from commsgw.notifications._json import ANY_DECODER, DECODE_ERRORS, SORTED_ENCODER

__all__ = ["dedup_key", "element_digest"]

_DEDUP_DIGEST_SIZE: Final = 16
_DEDUP_PERSON: Final = b"commsgw-notif-v1"
# Prefix of content hashed as raw bytes (not re-encodable); cannot start canonical JSON.
_RAW_MARK: Final = b"\x00raw\x00"


def dedup_key(tenant_id: str, notification_json: bytes | bytearray | memoryview | Any) -> bytes:
    """A stable 16-byte digest of a notification's content and its tenant.

    ``notification_json`` is either the notification's JSON text (bytes-like) or the decoded
    JSON value. The digest covers the canonical JSON (object keys sorted at every level, no
    whitespace), so the same notification delivered twice gives the same key even when Graph
    serialised it differently. The tenant is normalised like
    :func:`~commsgw.notifications._parse.parse_notifications` does, so
    ``dedup_key(tenant, element_json)`` equals ``ParsedNotification.dedup_key``.
    Bytes that are not valid JSON (or nested too deeply to re-encode) are hashed as they are.
    """
    tenant = normalize_id(tenant_id)
    if isinstance(notification_json, bytes | bytearray | memoryview):
        raw = bytes(notification_json)
        try:
            canonical = SORTED_ENCODER.encode(ANY_DECODER.decode(raw))
        except DECODE_ERRORS:
            canonical = _RAW_MARK + raw
        return _digest(tenant, canonical)
    return _digest(tenant, _canonical(notification_json))


def _digest(tenant: str, canonical: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=_DEDUP_DIGEST_SIZE, person=_DEDUP_PERSON)
    tb = tenant.encode("utf-8", "surrogatepass")
    h.update(len(tb).to_bytes(4, "big"))
    h.update(tb)
    h.update(canonical)
    return h.digest()


def _canonical(value: Any) -> bytes:
    try:
        return SORTED_ENCODER.encode(value)
    except (msgspec.MsgspecError, TypeError, ValueError, RecursionError, OverflowError) as e:
        raise TypeError(f"notification is not a JSON value: {type(e).__name__}") from None


def element_digest(tenant: str, element: dict[str, Any], raw_bytes: bytes) -> bytes:
    """The dedup key of a decoded notification element (``raw_bytes``: its JSON as sent), for
    an already normalised tenant: what :func:`dedup_key` gives for ``raw_bytes``."""
    try:
        canonical = SORTED_ENCODER.encode(element)
    except (msgspec.MsgspecError, RecursionError, ValueError, TypeError, OverflowError):
        canonical = _RAW_MARK + raw_bytes
    return _digest(tenant, canonical)
