"""The secret scan of the run's logs: nothing secret the tests used may appear in what a
gateway logged (conftest.py runs it at the end of the session).

The secrets: the emulator app's client secret, the callers' tokens, the recording access token
the tests post, and any JWT (app tokens, notification tokens).
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterable

from helpers.callers import TOKENS

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+")
SECRETS = ["emulator-secret", "rec-secret-42", *TOKENS.values()]


def leaks(text: str) -> list[str]:
    """What leaked in `text`, each told without the secret itself (a JWT by its first
    characters, a fixed secret by its position in SECRETS)."""
    found = [f"secret #{i} ({len(s)} characters)" for i, s in enumerate(SECRETS) if s in text]
    found += [f"a JWT starting {m.group(0)[:10]}..." for m in JWT.finditer(text)]
    return found


def scan(paths: Iterable[pathlib.Path]) -> tuple[dict[pathlib.Path, list[str]], int]:
    """The leaks of each file that has any, and how many characters were scanned."""
    found: dict[pathlib.Path, list[str]] = {}
    scanned = 0
    for path in paths:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        scanned += len(text)
        if hit := leaks(text):
            found[path] = hit
    return found, scanned
