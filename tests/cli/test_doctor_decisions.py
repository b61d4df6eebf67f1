"""`commsgw doctor`'s decisions: each check's verdict from what its I/O found."""

from __future__ import annotations

import argparse
import email.utils

import pytest

from commsgw.cli._doctor import (
    decide_clock,
    decide_roles,
    decide_webhook_reply,
    decide_webhook_url,
    uses_of,
)
from commsgw.graph import GRAPH_PERMISSIONS

NEEDED = {
    "PlayPrompt": ("Calls.Initiate.All", "Calls.AccessMedia.All"),
    "CreateCall (peer-to-peer)": ("Calls.Initiate.All",),
    "CreateCall (group call)": ("Calls.InitiateGroupCall.All",),
    "GetOperation": (),
}


def test_roles_that_cover_every_use_pass() -> None:
    found = decide_roles(
        ["Calls.Initiate.All", "Calls.InitiateGroupCall.All"], list(NEEDED), NEEDED
    )
    assert found.ok, found


def test_one_of_the_permissions_is_enough() -> None:
    assert decide_roles(["Calls.AccessMedia.All"], ["PlayPrompt"], NEEDED).ok


def test_a_missing_permission_names_the_uses_it_breaks() -> None:
    found = decide_roles(["Calls.Initiate.All"], list(NEEDED), NEEDED)
    assert not found.ok
    assert "no Calls.InitiateGroupCall.All: CreateCall (group call) will fail" in found.detail
    assert "PlayPrompt" not in found.detail and "Calls.InitiateGroupCall.All" in found.fix


def test_no_roles_at_all_fail_every_use_that_needs_one() -> None:
    found = decide_roles([], list(NEEDED), NEEDED)
    assert not found.ok
    assert "PlayPrompt" in found.detail and "CreateCall (peer-to-peer)" in found.detail
    assert "GetOperation" not in found.detail  # needs none


@pytest.mark.parametrize(
    ("url", "emulator", "ok"),
    [
        ("https://bot.example.com/api/calls", False, True),
        ("http://bot.example.com/api/calls", False, False),
        ("http://127.0.0.1:8080/api/calls", True, True),
        ("http://[::1]:8080/api/calls", True, True),
        ("http://localhost:8080/api/calls", True, True),
        ("http://127.0.0.1:8080/api/calls", False, False),
        ("http://10.1.2.3:8080/api/calls", True, False),
        ("", False, False),
    ],
)
def test_the_webhook_url_must_be_https_but_on_the_emulators_loopback(
    url: str, emulator: bool, ok: bool
) -> None:
    assert decide_webhook_url(url, emulator_mode=emulator).ok is ok


def test_a_commsgw_webhook_answers_401_with_its_json_error() -> None:
    body = b'{"error": {"code": 401, "message": "missing bearer token"}}'
    assert decide_webhook_reply("https://x/api/calls", 401, body).ok
    other = decide_webhook_reply("https://x/api/calls", 401, b"<html>login</html>")
    assert not other.ok and "not as a commsgw webhook" in other.detail
    assert not decide_webhook_reply("https://x/api/calls", 404, b"{}").ok
    down = decide_webhook_reply("https://x/api/calls", None, b"", "ConnectError: refused")
    assert not down.ok and "cannot be reached: ConnectError" in down.detail and down.fix


def test_the_clock_within_the_leeway_passes_and_beyond_fails() -> None:
    now = 1_800_000_000.0
    date = email.utils.formatdate(now, usegmt=True)
    assert decide_clock(now + 30, date, 60).ok
    late = decide_clock(now + 120, date, 60)
    assert not late.ok and "+120 s off" in late.detail and "NTP" in late.fix
    assert not decide_clock(now - 120, date, 60).ok
    assert not decide_clock(now, None, 60).ok
    assert not decide_clock(now, "not a date", 60).ok


def test_rpcs_select_their_uses_and_an_unknown_name_is_refused() -> None:
    assert uses_of("") == list(GRAPH_PERMISSIONS)
    create = uses_of("CreateCall")
    assert len(create) > 1 and all(u.startswith("CreateCall (") for u in create)
    assert uses_of("PlayPrompt, HangUpCall") == ["PlayPrompt", "HangUpCall"]
    with pytest.raises(argparse.ArgumentTypeError, match="'Nope' is not an RPC"):
        uses_of("Nope")


def test_every_rpc_that_reaches_graph_has_an_entry() -> None:
    from commsgw.graph import ACTIONS

    named = {u.split(" (")[0] for u in GRAPH_PERMISSIONS}
    assert set(ACTIONS) <= named
