"""Nothing secret appears in the logs of the whole test run.

Runs last (file name order). It scans what every in-process gateway logged during the run,
both as formatted for operators and raw (before the formatter's masking), and the log files of
every gateway process the tests started, for the secrets the tests used: the app's client
secret, caller tokens, recording access tokens, and any JWT (app tokens, notification tokens).
"""

from __future__ import annotations

import re

import pytest
from test_hardening import TOKENS

from conftest import LOG_DIR_KEY

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+")
SECRETS = ["emulator-secret", "rec-secret-42", *TOKENS.values()]


def _leaks(text: str) -> list[str]:
    found = [s for s in SECRETS if s in text]
    found += [m.group(0)[:20] + "..." for m in JWT.finditer(text)]
    return found


def test_no_secret_in_any_log(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = pytestconfig.stash[LOG_DIR_KEY]
    files = [folder / "formatted.log", folder / "raw.log"]
    files += sorted(tmp_path_factory.getbasetemp().rglob("*.log"))
    scanned = 0
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        scanned += len(text)
        leaks = _leaks(text)
        assert not leaks, f"{path.name} leaks {leaks[:3]}"
    if not scanned:
        pytest.skip("no gateway ran in this session: nothing to scan")


def test_scanner_finds_planted_secrets() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ4In0.c2lnbmF0dXJl"
    assert _leaks(f"Authorization: Bearer {token}")
    assert _leaks("client_secret=emulator-secret")
    assert not _leaks("webhook POST 202")
