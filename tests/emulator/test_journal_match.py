"""The request journal's pure parts: the body-subset match of request verification and the
call a request concerns."""

from __future__ import annotations

from typing import Any

import pytest

from commsgw.emulator._control_journal import body_matches, call_id_of, parsed_body

CALL = "57dab8b1-894c-409a-b240-bd8beae78896"
BODY = {
    "clientContext": "menu",
    "prompts": [
        {"mediaInfo": {"uri": "https://x/a.wav"}},
        {"mediaInfo": {"uri": "https://x/b.wav", "resourceId": "b"}},
    ],
    "loop": False,
    "count": 2,
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({}, True),
        ({"clientContext": "menu"}, True),
        ({"clientContext": "Menu"}, False),
        ({"missing": None}, False),
        ({"prompts": [{"mediaInfo": {"uri": "https://x/b.wav"}}]}, True),
        ({"prompts": [{"mediaInfo": {"uri": "https://x/c.wav"}}]}, False),
        ({"prompts": []}, True),
        ({"prompts": {"mediaInfo": {}}}, False),
        ({"loop": False}, True),
        ({"loop": 0}, False),  # a bool is not a number
        ({"count": 2.0}, True),
        ({"count": True}, False),
        ({"clientContext": ["menu"]}, False),
    ],
)
def test_a_pattern_matches_a_body_it_is_a_subset_of(pattern: Any, expected: bool) -> None:
    assert body_matches(pattern, BODY) is expected


def test_a_scalar_pattern_against_a_body_that_is_not_an_object() -> None:
    assert body_matches("x", "x") and not body_matches({"a": 1}, "x")
    assert not body_matches({"a": 1}, None)


def test_the_call_of_a_request_is_in_its_path_or_its_location() -> None:
    upper = CALL.upper()
    assert call_id_of(f"/v1.0/communications/calls/{upper}/playPrompt", None) == CALL
    assert call_id_of(f"/v1.0/communications/calls/{CALL.replace('-', '')}", None) == CALL
    location = f"https://127.0.0.1:8443/v1.0/communications/calls/{CALL}"
    assert call_id_of("/v1.0/communications/calls", location) == CALL
    assert call_id_of("/v1.0/communications/calls", None) is None
    assert call_id_of("/v1.0/communications/calls/not-a-guid", None) is None


def test_a_body_is_json_when_it_parses_else_text() -> None:
    assert parsed_body(b'{"a": [1]}') == {"a": [1]}
    assert parsed_body(b"not json") == "not json"
    assert parsed_body(b"") is None
