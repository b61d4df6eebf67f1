"""Graph's call-state order and what a call update does to a call's latest state (pure), and
the reconciliation rules that pick which 404s and idle calls are a call gone (pure)."""

from __future__ import annotations

import pytest

from commsgw.eventlog import _callstates as cs
from commsgw.eventlog._callstates import Decision, decide, decision_row, is_stale
from commsgw.keepalive._reconcile import call_of_path, expired, observed_end
from graphcomms.v1 import calls_pb2 as pb

CALL = "2c1f6a4e-0b0e-4c8e-9f3e-6b4f1f0b9a11"


@pytest.mark.parametrize(
    ("latest", "new"),
    [
        (pb.CALL_STATE_TERMINATED, pb.CALL_STATE_ESTABLISHED),
        (pb.CALL_STATE_ESTABLISHED, pb.CALL_STATE_ESTABLISHING),
        (pb.CALL_STATE_ESTABLISHING, pb.CALL_STATE_INCOMING),
        (pb.CALL_STATE_TERMINATING, pb.CALL_STATE_HOLD),
        (pb.CALL_STATE_TRANSFER_ACCEPTED, pb.CALL_STATE_TRANSFERRING),
        (pb.CALL_STATE_TERMINATED, pb.CALL_STATE_TERMINATING),
        (pb.CALL_STATE_REDIRECTING, pb.CALL_STATE_INCOMING),
        (pb.CALL_STATE_HOLD, pb.CALL_STATE_RINGING),
    ],
)
def test_a_state_behind_the_latest_is_stale(latest: int, new: int) -> None:
    assert is_stale(latest, new)


@pytest.mark.parametrize(
    ("latest", "new"),
    [
        (pb.CALL_STATE_INCOMING, pb.CALL_STATE_ESTABLISHING),
        (pb.CALL_STATE_INCOMING, pb.CALL_STATE_ESTABLISHED),  # establishing was lost or late
        (pb.CALL_STATE_ESTABLISHED, pb.CALL_STATE_HOLD),
        (pb.CALL_STATE_HOLD, pb.CALL_STATE_ESTABLISHED),
        (pb.CALL_STATE_TRANSFERRING, pb.CALL_STATE_ESTABLISHED),  # the transfer failed
        (pb.CALL_STATE_ESTABLISHED, pb.CALL_STATE_ESTABLISHED),  # tones, media changes
        (pb.CALL_STATE_ESTABLISHING, pb.CALL_STATE_RINGING),
        (pb.CALL_STATE_RINGING, pb.CALL_STATE_ESTABLISHING),
        (pb.CALL_STATE_INCOMING, pb.CALL_STATE_TERMINATED),
        (pb.CALL_STATE_HOLD, pb.CALL_STATE_TERMINATING),
        (pb.CALL_STATE_TERMINATED, pb.CALL_STATE_TERMINATED),
        (pb.CALL_STATE_ESTABLISHED, pb.CALL_STATE_UNSPECIFIED),
        (pb.CALL_STATE_UNSPECIFIED, pb.CALL_STATE_INCOMING),
    ],
)
def test_a_state_the_call_can_reach_is_not_stale(latest: int, new: int) -> None:
    assert not is_stale(latest, new)


def test_every_contract_state_but_unspecified_has_a_place_in_the_order() -> None:
    known = set(pb.CallState.values()) - {pb.CALL_STATE_UNSPECIFIED}
    assert set(cs.REACHABLE) == known
    for state in known:  # every state can end, and nothing comes after terminated
        assert pb.CALL_STATE_TERMINATED in cs.REACHABLE[state]
    assert cs.REACHABLE[pb.CALL_STATE_TERMINATED] == {pb.CALL_STATE_TERMINATED}


def test_decisions() -> None:
    terminated = pb.CALL_STATE_TERMINATED
    established = pb.CALL_STATE_ESTABLISHED
    assert decide(None, established, observed=False) is Decision.APPLY
    assert decide((established, False), pb.CALL_STATE_UNSPECIFIED, observed=False) is (
        Decision.KEEP
    )
    assert decide((terminated, False), established, observed=False) is Decision.STALE
    # The gateway's own observed end: stored unless the call is already terminated.
    assert decide((established, False), terminated, observed=True) is Decision.APPLY
    assert decide(None, terminated, observed=True) is Decision.APPLY
    assert decide((terminated, False), terminated, observed=True) is Decision.DROP
    assert decide((terminated, True), terminated, observed=True) is Decision.DROP
    # Graph's end after the observed one is the same end; anything else after it is stale.
    assert decide((terminated, True), terminated, observed=False) is Decision.CONFIRM
    assert decide((terminated, True), pb.CALL_STATE_TERMINATING, observed=False) is (Decision.STALE)
    assert decide((terminated, False), terminated, observed=False) is Decision.APPLY


@pytest.mark.parametrize("observed", [False, True])
@pytest.mark.parametrize("new", sorted(pb.CallState.values()))
def test_the_scripts_row_is_the_decision_for_every_latest_state(new: int, observed: bool) -> None:
    row = decision_row(new, observed=observed)
    assert row[0] == decide(None, new, observed=observed).value
    for state in pb.CallState.values():
        for was_observed in (False, True):
            at = 1 + cs.code(state, was_observed)
            assert row[at] == decide((state, was_observed), new, observed=observed).value


@pytest.mark.parametrize(
    ("path", "call"),
    [
        (f"/communications/calls/{CALL}", CALL),
        (f"/communications/calls/{CALL}/keepAlive", CALL),
        (f"/communications/calls/{CALL.replace('-', '').upper()}/playPrompt", CALL),
        (f"/communications/calls/{CALL}/participants", CALL),
        (f"/communications/calls/{CALL}/participants/{CALL}/mute", None),
        (f"/communications/calls/{CALL}/participants/invite", None),
        (f"/communications/calls/{CALL}/operations/{CALL}", None),
        ("/communications/calls", None),
        ("/communications/calls/not-a-guid/keepAlive", None),
    ],
)
def test_which_404s_are_about_the_call_itself(path: str, call: str | None) -> None:
    assert call_of_path(path) == call


def test_graphs_idle_limit() -> None:
    assert not expired(100.0, 100.0 + 2699.0, 2700.0)
    assert expired(100.0, 100.0 + 2700.0, 2700.0)


def test_an_observed_end_has_one_dedup_key_per_call_whatever_the_reason() -> None:
    a = observed_end("t", CALL, pb.OBSERVED_END_REASON_GRAPH_NOT_FOUND, "keepAlive 404")
    b = observed_end("t", CALL, pb.OBSERVED_END_REASON_KEEPALIVE_DEADLINE_PASSED, "idle")
    other = observed_end("t", CALL.replace("2c", "3c"), pb.OBSERVED_END_REASON_GRAPH_NOT_FOUND, "")
    assert a.dedup_key == b.dedup_key != other.dedup_key
    update = a.event.call_update
    assert update.state == pb.CALL_STATE_TERMINATED
    assert update.origin == pb.CALL_UPDATE_ORIGIN_GATEWAY
    assert a.event.change_type == pb.CHANGE_TYPE_DELETED
    assert a.event.call_id == CALL and a.event.tenant_id == "t"
