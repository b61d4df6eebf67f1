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
    """The stream ids of the latest-state hash's operation fields (values: the id), or of its
    call fields (values: ``<id>|<code>``)."""
    if calls:
        return [v.partition(b"|")[0] for v in latest.values() if b"|" in v]
    return [v for v in latest.values() if b"|" not in v]
