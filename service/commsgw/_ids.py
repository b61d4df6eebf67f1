"""Graph ids: GUIDs come dashed and lower-case in bodies, undashed and upper-case in resource
URLs (and sometimes in braces); everything the gateway compares is lower-case dashed."""

from __future__ import annotations

import os
import re

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_DASHED = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def normalize_guid(raw: str) -> str | None:
    """A GUID (dashed or not, any case, optionally in braces) as lower-case dashed, else None."""
    s = raw.strip()
    if len(s) >= 2 and s[0] == "{" and s[-1] == "}":
        s = s[1:-1].strip()
    n = len(s)
    if n == 36:
        return s.lower() if _DASHED.fullmatch(s) is not None else None
    if n == 32 and _HEX32.fullmatch(s) is not None:
        h = s.lower()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return None


def normalize_id(raw: str) -> str:
    """A GUID as lower-case dashed; any other id stripped but otherwise unchanged."""
    return normalize_guid(raw) or raw.strip()


def new_guid() -> str:
    """A new random (version 4) GUID, lower-case dashed: what `str(uuid.uuid4())` gives, at a
    third of its cost (no UUID object), for the client-request-id of every Graph request."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"
