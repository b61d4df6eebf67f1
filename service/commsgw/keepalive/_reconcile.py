"""Reconciliation: a call the gateway believes alive but Graph has ended without telling it.

Graph's termination notification can be lost. The gateway then learns that the call is gone
in one of two ways, and appends a terminal CallUpdate of origin GATEWAY to the event log, so
that every subscriber on every replica learns it:

- Graph answers 404 for the call itself (managed keepAlive, GetCall, or any action whose path
  is the call or one action or collection right below it) while the log's latest state of the
  call is not terminated: reason GRAPH_NOT_FOUND. (A 404 for a participant or an operation of
  the call says nothing about the call.)
- The call passes Graph's idle limit (45 minutes) with no successful keepAlive and no
  notification about it: reason KEEPALIVE_DEADLINE_PASSED (the keeper, `_keeper`).

The end is stored once per call: its dedup key is derived from (tenant, call) alone, so two
replicas that both notice store one; and the log does not store it at all when the call's
latest state is already terminated (see `commsgw.eventlog._callstates`). Graph's own
termination that comes after it is stored flagged `confirms_observed_end`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from commsgw._ids import normalize_guid
from commsgw.eventlog import EventLog
from graphcomms.v1 import calls_pb2

log = logging.getLogger("commsgw.reconcile")

# The call itself, or one segment below it (an action such as /keepAlive, or /participants).
_CALL_PATH = re.compile(r"^/communications/calls/([^/]+)(?:/[^/]+)?/?$")

GRAPH_NOT_FOUND = calls_pb2.OBSERVED_END_REASON_GRAPH_NOT_FOUND
DEADLINE_PASSED = calls_pb2.OBSERVED_END_REASON_KEEPALIVE_DEADLINE_PASSED


def call_of_path(path: str) -> str | None:
    """The call a Graph request path is about when a 404 to it means the call is gone: the
    call's own path or one action or collection directly below it; None otherwise."""
    found = _CALL_PATH.match(path)
    return normalize_guid(found.group(1)) if found else None


@dataclass(frozen=True, slots=True)
class ObservedEnd:
    """What the log stores for an observed end (an `commsgw.eventlog.Appended`)."""

    event: calls_pb2.Event
    dedup_key: bytes
    operation_key: tuple[str, str, str] | None = None


def observed_end(
    tenant: str, call: str, reason: calls_pb2.ObservedEndReason.ValueType, detail: str
) -> ObservedEnd:
    """The terminal CallUpdate of a call the gateway observed to have ended."""
    now = Timestamp()
    now.GetCurrentTime()
    event = calls_pb2.Event(
        tenant_id=tenant,
        call_id=call,
        change_type=calls_pb2.CHANGE_TYPE_DELETED,
        resource_url=f"/communications/calls/{call}",
        receive_time=now,
        call_update=calls_pb2.CallUpdate(
            state=calls_pb2.CALL_STATE_TERMINATED,
            origin=calls_pb2.CALL_UPDATE_ORIGIN_GATEWAY,
            observed_end_reason=reason,
            observed_detail=detail,
        ),
    )
    # One key per call, whoever observes it and why: two replicas store one end.
    key = hashlib.sha256(f"observed-end\0{tenant}\0{call}".encode()).digest()[:16]
    return ObservedEnd(event, key)


def expired(last_life: float, now: float, limit_s: float) -> bool:
    """Whether a call last seen alive at `last_life` has passed Graph's idle limit by `now`."""
    return now - last_life >= limit_s


class Reconciler:
    """Appends observed ends to the log (see the module docstring); off when not `enabled`."""

    def __init__(
        self,
        log_: EventLog,
        *,
        enabled: bool,
        on_observed: Callable[[str], None] | None = None,
    ) -> None:
        self._log = log_
        self.enabled = enabled
        self._on_observed = on_observed

    async def not_found(self, tenant: str, path: str, detail: str) -> bool:
        """Graph answered 404 to `path`: when it is about a call whose latest state in the
        log is not terminated, report the call ended. Whether an end was stored; never
        raises (the caller's own answer goes on)."""
        call = call_of_path(path)
        if not self.enabled or call is None:
            return False
        try:
            latest = await self._log.latest_call((tenant, call))
        except Exception as exc:
            log.warning("could not look up call %s after a 404: %s", call, exc)
            return False
        if latest is None or latest.event.call_update.state == calls_pb2.CALL_STATE_TERMINATED:
            return False  # a call this gateway never knew alive, or one already ended
        try:
            return await self.observe(tenant, call, GRAPH_NOT_FOUND, detail)
        except Exception as exc:
            log.warning("could not report call %s ended: %s", call, exc)
            return False

    async def observe(
        self, tenant: str, call: str, reason: calls_pb2.ObservedEndReason.ValueType, detail: str
    ) -> bool:
        """Append the call's observed end; whether it was stored (False: already stored by a
        replica, or the call already terminated). Raises EventLogUnavailable."""
        if not self.enabled:
            return False
        result = await self._log.append([observed_end(tenant, call, reason, detail)])
        if result.appended:
            name = calls_pb2.ObservedEndReason.Name(reason)
            log.warning("call %s ended without a notification from Graph: %s", call, detail)
            if self._on_observed is not None:
                self._on_observed(name.removeprefix("OBSERVED_END_REASON_").lower())
        return bool(result.appended)
