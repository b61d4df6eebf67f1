"""Events: the event-log interface, log entries, resume tokens and subscriber filters.

An event log stores every accepted notification under a totally ordered position and hands
every stored entry, in order, to one listener (the process's fan-out hub). Two
implementations exist: in memory (`commsgw.eventlog._memory`, the default) and Redis Streams
(`commsgw.eventlog._redis`, shared by replicas).
"""

from __future__ import annotations

import abc
import base64
import binascii
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from commsgw._errors import InvalidArgument, ResumeTokenExpired
from commsgw._ids import normalize_guid
from graphcomms.v1 import calls_pb2

Position = tuple[int, int]
"""A log position: (milliseconds, sequence) for Redis stream ids, (sequence, 0) in memory."""

ZERO: Position = (0, 0)

KIND_OPERATION = "operation_update"
KIND_CALL = "call_update"
KIND_OTHER = "other"


# What a log stores of an entry besides its payload, for `LogEntry.stored`: tenant, call,
# kind, operation type, status, client context, whether it carries a recording token.
StoredFields = tuple[str, str, str, int, int, str, bool]


class LogEntry:
    """One stored event and its position; the fields filters look at are read once.

    One entry (and its `event`) is handed to every reader: the hub, each subscriber, the
    indexes. Readers never change it; a view that differs for one caller is a copy
    (`redacted_payload` here, `commsgw.server._redaction` for unary answers)."""

    __slots__ = (
        "_event",
        "_payload",
        "_redacted",
        "call_id",
        "client_context",
        "has_recording_token",
        "kind",
        "op_type",
        "position",
        "status",
        "tenant_id",
        "traceparent",
    )

    def __init__(
        self, position: Position, event: calls_pb2.Event, payload: bytes | None = None
    ) -> None:
        """`payload`: the event already serialised, else made when first asked for."""
        self.position = position
        # The W3C traceparent of the webhook POST that stored it, when that was traced.
        self.traceparent = ""
        self._event: calls_pb2.Event | None = event
        self.tenant_id = event.tenant_id
        self.call_id = event.call_id
        kind = event.WhichOneof("kind") or KIND_OTHER
        self.kind = kind
        if kind == KIND_OPERATION:
            op = event.operation_update.operation
            self.op_type: int = op.type
            self.status: int = op.status
            self.client_context = op.client_context
            self.has_recording_token = bool(op.recording_access_token)
        else:
            self.op_type = 0
            self.status = 0
            self.client_context = ""
            self.has_recording_token = False
        self._payload: bytes | None = payload
        self._redacted: bytes | None = None

    @classmethod
    def stored(
        cls, position: Position, payload: bytes, traceparent: str, fields: StoredFields
    ) -> LogEntry:
        """An entry made from what a log stored (`payload` and the `fields` filters read,
        as `fields_of` gave them): its event is decoded only when something asks for it."""
        entry = cls.__new__(cls)
        entry.position = position
        entry.traceparent = traceparent
        entry._event = None
        (
            entry.tenant_id,
            entry.call_id,
            entry.kind,
            entry.op_type,
            entry.status,
            entry.client_context,
            entry.has_recording_token,
        ) = fields
        entry._payload = payload
        entry._redacted = None
        return entry

    def fields(self) -> StoredFields:
        """What `stored` needs besides the payload: the fields filters read (atomic values)."""
        return (
            self.tenant_id,
            self.call_id,
            self.kind,
            self.op_type,
            self.status,
            self.client_context,
            self.has_recording_token,
        )

    @property
    def event(self) -> calls_pb2.Event:
        """The event (shared by every reader: never changed)."""
        if self._event is None:
            assert self._payload is not None
            self._event = calls_pb2.Event.FromString(self._payload)
        return self._event

    @property
    def payload(self) -> bytes:
        """The event serialised once, shared by every subscriber it is sent to."""
        if self._payload is None:
            self._payload = self.event.SerializeToString()
        return self._payload

    @property
    def redacted_payload(self) -> bytes:
        """The event without recording_access_token, for callers not allowed to read
        recordings (the same bytes as `payload` when there is no token)."""
        if self._redacted is None:
            if self.has_recording_token:
                copy = calls_pb2.Event()
                copy.CopyFrom(self.event)
                copy.operation_update.operation.recording_access_token = ""
                self._redacted = copy.SerializeToString()
            else:
                self._redacted = self.payload
        return self._redacted

    def __repr__(self) -> str:
        return f"LogEntry({self.position}, {self.kind}, call={self.call_id})"


@dataclass(frozen=True, slots=True)
class AppendResult:
    appended: int
    duplicates: int


class EventLog(abc.ABC):
    """Where accepted notifications are stored, in order, and read back."""

    log_id: str

    @abc.abstractmethod
    async def start(
        self,
        listener: Callable[[Sequence[LogEntry]], None],
        on_gap: Callable[[Position | None], None] | None = None,
    ) -> Position:
        """Begin handing every entry stored from now on (by any writer) to `listener`, in
        order; returns the position of the last entry stored before (the listener's head).
        `on_gap` is called when entries were lost before the listener saw them (a shared log
        trimmed or recreated while this reader was away): every watch must then resume. It is
        passed None for a trim, and for a recreated log the position that log starts from
        (the listener's new head: the new log's positions may be at or below the old ones)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def append(self, items: Sequence[Appended], *, traceparent: str = "") -> AppendResult:
        """Store the notifications in order, dropping those already stored (same dedup key
        within the retention window), with the traceparent of the POST that brought them.
        Call updates are flagged and indexed as `commsgw.eventlog._callstates.decide` says
        (stale ones are stored flagged; an observed end of a call already terminated is
        dropped and counted as a duplicate).
        Returns only once each one is stored; raises EventLogUnavailable when they could not
        all be stored."""

    @abc.abstractmethod
    async def read_range(self, after: Position, until: Position, limit: int) -> list[LogEntry]:
        """Entries with after < position <= until, in order, at most `limit`."""

    @abc.abstractmethod
    async def check_resumable(self, position: Position) -> None:
        """Raise ResumeTokenExpired when entries after `position` are no longer retained."""

    @abc.abstractmethod
    async def latest_operations(self) -> list[LogEntry]:
        """The latest known entry of every operation still retained, in position order."""

    @abc.abstractmethod
    async def latest_operation(self, key: tuple[str, str, str]) -> LogEntry | None:
        """The latest entry about the operation `key` (tenant, call id, operation id) still
        retained, None when the log has none. Consistent with what the listener is handed: an
        entry stored before this call is either returned or (when newer) handed later."""

    @abc.abstractmethod
    async def latest_calls(self) -> list[LogEntry]:
        """The latest CallUpdate of every call still retained (never a stale one: see
        `commsgw.eventlog._callstates`), in position order."""

    @abc.abstractmethod
    async def latest_call(self, key: tuple[str, str]) -> LogEntry | None:
        """The latest CallUpdate of the call `key` (tenant, call id) still retained (never a
        stale one), None when the log has none."""

    @property
    @abc.abstractmethod
    def ready(self) -> bool:
        """Whether the log can be written and read now."""


class Appended(Protocol):
    """What the log stores of a parsed notification (commsgw.notifications._parse)."""

    @property
    def event(self) -> calls_pb2.Event: ...
    @property
    def dedup_key(self) -> bytes: ...
    @property
    def operation_key(self) -> tuple[str, str, str] | None: ...


# --- resume tokens -------------------------------------------------------------------------


T = TypeVar("T")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in order, in lists of `size` (the last one shorter). Lazy: an item is taken from
    `items` only when the list it goes in is made, so a queue read through a generator gives up
    only what is about to be sent."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def encode_token(log_id: str, position: Position) -> str:
    raw = f"1|{log_id}|{position[0]}-{position[1]}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str, log_id: str) -> Position:
    """The position in `token`; InvalidArgument when malformed, ResumeTokenExpired when it
    comes from another event log."""
    if len(token) > 512:
        raise InvalidArgument("resume_token is too long", reason="INVALID_RESUME_TOKEN")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, token_log, pos = raw.split("|")
        a, b = pos.split("-")
        # Only what encode_token writes (int() also takes "+1", " 1", "1_0", non-ASCII digits).
        if not (a.isascii() and a.isdigit() and b.isascii() and b.isdigit()):
            raise ValueError(pos)
        position = (int(a), int(b))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidArgument(
            "resume_token is not a token this gateway issued", reason="INVALID_RESUME_TOKEN"
        ) from None
    if version != "1" or position[0] < 0 or position[1] < 0:
        raise InvalidArgument(
            "resume_token is not a token this gateway issued", reason="INVALID_RESUME_TOKEN"
        )
    if token_log != log_id:
        raise ResumeTokenExpired(
            "resume_token comes from another event log (the gateway restarted with an "
            "in-memory log, or points at another deployment); resume without a token"
        )
    return position


# --- filters -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchFilter:
    """Which events a subscriber receives (empty sets mean "any")."""

    call_ids: frozenset[str] = frozenset()
    tenant_ids: frozenset[str] = frozenset()
    op_types: frozenset[int] = frozenset()
    statuses: frozenset[int] = frozenset()
    client_context: str = ""
    include_calls: bool = False
    include_other: bool = False

    @classmethod
    def build(
        cls,
        *,
        call_ids: Iterable[str],
        tenant_ids: Iterable[str],
        op_types: Iterable[int],
        statuses: Iterable[int],
        client_context: str,
        include_calls: bool,
        include_other: bool,
        max_ids: int = 10_000,
    ) -> WatchFilter:
        calls = _guids(call_ids, "call_ids", max_ids)
        tenants = _guids(tenant_ids, "tenant_ids", max_ids)
        types = frozenset(op_types)
        if any(t not in calls_pb2.OperationType.values() for t in types):
            raise InvalidArgument("operation_types has an unknown value", reason="INVALID_FILTER")
        sts = frozenset(statuses)
        if any(s not in calls_pb2.OperationStatus.values() for s in sts):
            raise InvalidArgument("statuses has an unknown value", reason="INVALID_FILTER")
        if len(client_context) > 256:
            raise InvalidArgument(
                "client_context filter is longer than 256 characters", reason="INVALID_FILTER"
            )
        return cls(calls, tenants, types, sts, client_context, include_calls, include_other)

    def matches(self, e: LogEntry) -> bool:
        if self.tenant_ids and e.tenant_id not in self.tenant_ids:
            return False
        if self.call_ids and e.call_id not in self.call_ids:
            return False
        if e.kind == KIND_OPERATION:
            if self.op_types and e.op_type not in self.op_types:
                return False
            if self.statuses and e.status not in self.statuses:
                return False
            return not self.client_context or e.client_context == self.client_context
        if e.kind == KIND_CALL:
            return self.include_calls
        return self.include_other


def _guids(values: Iterable[str], name: str, max_ids: int) -> frozenset[str]:
    out: set[str] = set()
    for v in values:
        g = normalize_guid(v)
        if g is None:
            raise InvalidArgument(f"{name} has a value that is not a GUID", reason="INVALID_FILTER")
        out.add(g)
        if len(out) > max_ids:
            raise InvalidArgument(f"{name} has more than {max_ids} ids", reason="INVALID_FILTER")
    return frozenset(out)
