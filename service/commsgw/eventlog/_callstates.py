"""Graph's call states, the order they follow, and what a new CallUpdate does to a call's
latest state: the one place this is written down (the logs apply it; the Redis log's script
only looks up the answer computed here, see `decision_row`).

A call moves forward through its states (Graph's callState enum, v1.0):

    incoming -> establishing | redirecting | terminating | terminated
    establishing <-> ringing (beta; an outgoing call rings) -> established
    established <-> hold;  established -> transferring -> transferAccepted -> terminating
    transferring -> established  (a transfer that failed: the call goes on)
    redirecting -> terminating -> terminated;  any state -> terminating | terminated

An update whose state is not reachable from the call's latest state along these transitions
would move the call backwards (Graph may deliver notifications out of order): it is *stale*,
stored and delivered flagged, and the latest state stays as it was. The same state again is
not stale (Graph re-sends `established` with tones, media changes...). An update without a
state (UNSPECIFIED) is delivered and leaves the latest state alone.

An end the gateway observed itself (Graph answered 404, or the keepAlive deadline passed) is a
TERMINATED update of origin GATEWAY: it is not stored when the call's latest state is already
terminated (by Graph, or by another replica's observed end), and Graph's own TERMINATED after
it *confirms* it (the same end, not a second one).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from graphcomms.v1 import calls_pb2

S = calls_pb2
TERMINATED = S.CALL_STATE_TERMINATED

# The documented transitions: each state and the states a call may move to next from it.
NEXT: Mapping[int, frozenset[int]] = {
    S.CALL_STATE_INCOMING: frozenset({S.CALL_STATE_ESTABLISHING, S.CALL_STATE_REDIRECTING}),
    S.CALL_STATE_ESTABLISHING: frozenset({S.CALL_STATE_RINGING, S.CALL_STATE_ESTABLISHED}),
    S.CALL_STATE_RINGING: frozenset({S.CALL_STATE_ESTABLISHING, S.CALL_STATE_ESTABLISHED}),
    S.CALL_STATE_ESTABLISHED: frozenset({S.CALL_STATE_HOLD, S.CALL_STATE_TRANSFERRING}),
    S.CALL_STATE_HOLD: frozenset({S.CALL_STATE_ESTABLISHED}),
    # Graph's call-transfer page: a failed transfer is notified as the call established again.
    S.CALL_STATE_TRANSFERRING: frozenset(
        {S.CALL_STATE_TRANSFER_ACCEPTED, S.CALL_STATE_ESTABLISHED}
    ),
    S.CALL_STATE_TRANSFER_ACCEPTED: frozenset(),
    S.CALL_STATE_REDIRECTING: frozenset(),
    S.CALL_STATE_TERMINATING: frozenset(),
    S.CALL_STATE_TERMINATED: frozenset(),
}
# Every state but terminated may go to terminating, every state to terminated.
_ENDING: Mapping[int, frozenset[int]] = {
    S.CALL_STATE_TERMINATING: frozenset({TERMINATED}),
    TERMINATED: frozenset(),
}


def _next(state: int) -> frozenset[int]:
    ending: frozenset[int] = frozenset({S.CALL_STATE_TERMINATING, TERMINATED})
    return NEXT.get(state, frozenset()) | _ENDING.get(state, ending)


def _closure(state: int) -> frozenset[int]:
    seen = {state}
    todo = [state]
    while todo:
        for n in _next(todo.pop()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return frozenset(seen)


REACHABLE: Mapping[int, frozenset[int]] = {s: _closure(s) for s in NEXT}
"""Each known state and every state reachable from it (itself included)."""


def is_stale(latest: int, new: int) -> bool:
    """Whether a CallUpdate in state `new` would move a call now in `latest` backwards. States
    this order does not know (UNSPECIFIED, a future value) are never stale, nor are they
    moved away from as stale."""
    if latest not in REACHABLE or new not in REACHABLE:
        return False
    return new not in REACHABLE[latest]


class Decision(enum.Enum):
    """What storing a CallUpdate does, given the call's latest state (codes: see Redis)."""

    APPLY = "a"  # stored; becomes the call's latest state
    STALE = "s"  # stored flagged stale; the latest state stays
    KEEP = "k"  # stored (no state to apply); the latest state stays
    CONFIRM = "c"  # Graph's end after an observed one: stored flagged, becomes the latest
    DROP = "d"  # an observed end of a call already terminated: not stored


def decide(latest: tuple[int, bool] | None, new: int, *, observed: bool) -> Decision:
    """The decision for a CallUpdate in state `new` (`observed`: the gateway's own observed
    end), given the call's latest (state, observed) or None when the log knows no state."""
    if observed:
        return Decision.DROP if latest is not None and latest[0] == TERMINATED else Decision.APPLY
    if new == S.CALL_STATE_UNSPECIFIED:
        return Decision.KEEP
    if latest is None:
        return Decision.APPLY
    state, was_observed = latest
    if was_observed and state == TERMINATED and new == TERMINATED:
        return Decision.CONFIRM
    return Decision.STALE if is_stale(state, new) else Decision.APPLY


# --- the compact form the Redis log's script reads ------------------------------------------

STATES = tuple(sorted(S.CallState.values()))


def code(state: int, observed: bool) -> int:
    """The code of a latest state, as the Redis log's call index stores it."""
    return 2 * state + (1 if observed else 0)


def decision_row(new: int, *, observed: bool) -> str:
    """The decision for a CallUpdate in state `new` under every possible latest state, as one
    string: character 0 when the call has no latest state, character 1 + code(state, obs)
    otherwise. The append script indexes it with what it finds; it decides nothing itself."""
    row = [decide(None, new, observed=observed).value]
    for c in range(max(STATES) * 2 + 2):
        row.append(decide((c // 2, bool(c % 2)), new, observed=observed).value)
    return "".join(row)


def is_observed(update: calls_pb2.CallUpdate) -> bool:
    """Whether the update is an end the gateway observed itself (not sent by Graph)."""
    return update.origin == S.CALL_UPDATE_ORIGIN_GATEWAY


def call_key(event: calls_pb2.Event) -> tuple[str, str] | None:
    """The (tenant, call) whose latest state a call update is about; None for other events
    and for a call update without a call id."""
    if event.WhichOneof("kind") != "call_update" or not event.call_id:
        return None
    return (event.tenant_id, event.call_id)


def mark(update: calls_pb2.CallUpdate, decision: Decision) -> None:
    """Set the flags a stored update carries for its decision."""
    if decision is Decision.STALE:
        update.stale = True
    elif decision is Decision.CONFIRM:
        update.confirms_observed_end = True
