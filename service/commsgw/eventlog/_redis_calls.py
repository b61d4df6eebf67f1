"""The Redis event log's call index: what the append script is given for a call update, and
how the latest-state hash's call fields are told from its operation fields (see ``_redis``)."""

from __future__ import annotations

import json

from commsgw.eventlog import _callstates as cs
from graphcomms.v1 import calls_pb2

__all__ = ["call_args", "latest_ids"]


def call_args(event: calls_pb2.Event) -> tuple[bytes, bytes, int]:
    """The call field (JSON ``[tenant,call]``; empty for an event that is not a call update),
    the decision row and the code of the update's state, as the append script takes them."""
    key = cs.call_key(event)
    if key is None:
        return (b"", b"", 0)
    update = event.call_update
    observed = cs.is_observed(update)
    field = json.dumps(key, separators=(",", ":")).encode()
    row = cs.decision_row(update.state, observed=observed)
    return (field, row.encode(), cs.code(update.state, observed))


def latest_ids(latest: dict[bytes, bytes], *, calls: bool) -> list[bytes]:
    """The stream ids in the latest-state hash for its operation fields (JSON ``[tenant, call,
    operation]``) or for its call fields (JSON ``[tenant, call]``)."""
    want = 2 if calls else 3
    return [v for k, v in latest.items() if _arity(k) == want]


def _arity(field: bytes) -> int:
    try:
        key = json.loads(field)
    except ValueError:
        return 0
    return len(key) if isinstance(key, list) else 0
