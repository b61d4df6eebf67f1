"""What a notification is about: its resourceUrl and the ``@odata.type`` of its resourceData.

A resourceUrl gives the call id and whether it points at the call, one of its operations or
something else; an ``@odata.type`` maps to a short lower-case type name and, for operations, to
the contract's OperationType.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from commsgw._graphjson import OPERATION_TYPES, short_type_name
from commsgw._ids import normalize_id

__all__ = [
    "OPERATION_TYPES",
    "URL_CALL",
    "URL_OPERATION",
    "URL_OPERATIONS",
    "URL_OTHER",
    "parse_resource_url",
    "short_type_name",
]


# What a resourceUrl points at (after the calls segment).
URL_OTHER: Final = 0
URL_CALL: Final = 1
URL_OPERATION: Final = 2
URL_OPERATIONS: Final = 3  # the call's operations collection: .../calls/{id}/operations


def _parse_resource_url(url: str) -> tuple[str, int, str]:
    """Return (call id, what the URL points at, operation id) from a resourceUrl.

    Ids are normalised; a URL without a ``calls/{id}`` part gives ("", URL_OTHER, "").
    """
    u = url.strip()
    cut = len(u)
    for sep in ("?", "#"):
        i = u.find(sep)
        if 0 <= i < cut:
            cut = i
    u = u[:cut]
    scheme = u.find("://")
    if scheme >= 0:
        slash = u.find("/", scheme + 3)
        u = u[slash:] if slash >= 0 else ""
    segments = [s for s in u.split("/") if s]
    for i, seg in enumerate(segments):
        if seg.lower() == "calls" and i + 1 < len(segments):
            call_id = normalize_id(segments[i + 1])
            if not call_id:
                return "", URL_OTHER, ""
            rest = segments[i + 2 :]
            if not rest:
                return call_id, URL_CALL, ""
            if rest[0].lower() == "operations":
                if len(rest) == 1:
                    return call_id, URL_OPERATIONS, ""
                if len(rest) == 2:
                    return call_id, URL_OPERATION, normalize_id(rest[1])
            return call_id, URL_OTHER, ""
    return "", URL_OTHER, ""


# Graph repeats the same call (and operation) URLs many times: memoise short ones.
_CACHE_MAX_LEN: Final = 512
_parse_resource_url_cached: Final = lru_cache(maxsize=4096)(_parse_resource_url)


def parse_resource_url(url: str) -> tuple[str, int, str]:
    """:func:`_parse_resource_url`, memoised for URLs of up to ``_CACHE_MAX_LEN`` characters."""
    return (
        _parse_resource_url_cached(url) if len(url) <= _CACHE_MAX_LEN else _parse_resource_url(url)
    )
