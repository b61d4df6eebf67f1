"""Log redaction (commsgw._logging.redact) and the secret scan of the test run's logs
(helpers.logscan, run by conftest.py at the end of the session)."""

from __future__ import annotations

import logging
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commsgw._logging import JsonFormatter, redact
from helpers.callers import TOKENS
from helpers.logscan import SECRETS, leaks, scan

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ4In0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("authorization: bearer abc", "authorization: bearer ***"),
        ("BEARER   tok-watcher-19c2 next", "BEARER   *** next"),
        (f"token {JWT} end", "token *** end"),
        (f"id_token={JWT}&x=1", "id_token=***&x=1"),
        ('{"recordingAccessToken": "s3cret"}', '{"recordingAccessToken": "***"}'),
        ("recordingAccessToken=s3cret, next", "recordingAccessToken=***, next"),
        ("client_secret=s3cret&scope=x", "client_secret=***&scope=x"),
        ('"client_secret": "s3cret"}', '"client_secret": "***"}'),
    ],
)
def test_secrets_are_masked(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text", ["webhook POST 202", "rpc CancelMediaProcessing OK", "token refreshed", ""]
)
def test_other_text_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_it_errs_on_the_side_of_masking() -> None:
    # Whatever follows "bearer" is taken for a token.
    assert redact("the bearer of bad news") == "the bearer *** bad news"


@given(st.from_regex(r"[A-Za-z0-9._~+/=-]{8,64}", fullmatch=True))
def test_no_bearer_token_survives(token: str) -> None:
    assert token not in redact(f"GET /x Authorization: Bearer {token}")


def test_the_operators_json_lines_are_masked() -> None:
    record = logging.makeLogRecord(
        {"msg": "sent Authorization: Bearer %s", "args": ("tok-watcher-19c2",), "levelname": "INFO"}
    )
    line = JsonFormatter().format(record)
    assert "tok-watcher-19c2" not in line
    assert "Bearer ***" in line


# --- the scan of the run's logs -------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        'body {"recordingAccessToken": "s3cret-rec"}',
        'form client_secret="s3cret-app" sent',
    ],
)
def test_json_lines_mask_secrets_quoted_inside_the_message(message: str) -> None:
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "x"})
    line = JsonFormatter().format(record)
    assert "s3cret" not in line, line


def test_scanner_finds_planted_secrets() -> None:
    assert leaks(f"Authorization: Bearer {JWT}")
    assert leaks("client_secret=emulator-secret")
    assert leaks("recordingAccessToken=rec-secret-42")
    for token in TOKENS.values():
        assert leaks(f"caller {token}")
    assert not leaks("webhook POST 202")


def test_what_it_reports_does_not_repeat_the_secret() -> None:
    found = leaks(f"{JWT} emulator-secret {TOKENS['watcher']}")
    assert len(found) == 3
    for secret in [*SECRETS, JWT]:
        assert not any(secret in what for what in found)


def test_scan_reads_files_and_reports_those_with_leaks(tmp_path: pathlib.Path) -> None:
    # Not *.log: the session-end scan of the base temporary directory would find the plant.
    clean, dirty = tmp_path / "clean.txt", tmp_path / "dirty.txt"
    clean.write_text("webhook POST 202\n")
    dirty.write_text(f"oops {TOKENS['recorder']}\n")
    found, scanned = scan([clean, dirty, tmp_path / "missing.txt"])
    assert list(found) == [dirty]
    assert scanned == len(clean.read_text()) + len(dirty.read_text())
