"""Fault injection: make the next N matching requests fail, stall or drop the connection."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from commsgw.emulator._control_types import FaultBody


class Fault(FaultBody, frozen=True):
    """One injected fault.

    ``path_pattern`` is a regular expression searched (``re.search``) in the request path (no
    query string), e.g. ``r"/cancelMediaProcessing$"`` or ``r"/oauth2/v2.0/token$"``. ``method``
    (case-insensitive) restricts it to one HTTP method. The fault applies to the next ``count``
    matching requests (``count=-1``: every one until cleared); when several faults match, the
    one added first is used. A fault first sleeps ``delay_s`` and then either aborts the TCP
    connection (``reset_connection``), or passes the request on to the normal handler
    (``passthrough``; a pure stall), or answers ``status`` with a ``Retry-After`` header when
    ``retry_after`` is set and ``body`` (default: a Graph error body with ``error_code``, or an
    AAD error body on the token endpoint). ``headers`` are added to the response.

    The fields are the control API's `FaultBody` (the wire declaration the OpenAPI document
    is made from), camelCase over HTTP (``pathPattern``, ``retryAfter``, ``errorCode``,
    ``delayS``, ``resetConnection``): :meth:`from_json` / :meth:`to_json`; this class adds
    their validation and the matching.
    """

    def __post_init__(self) -> None:
        re.compile(self.path_pattern)
        if self.count == 0 or self.count < -1:
            raise ValueError("Fault.count must be >= 1, or -1 for unlimited")
        if self.delay_s < 0:
            raise ValueError("Fault.delay_s must be >= 0")
        if not self.reset_connection and not self.passthrough and not 100 <= self.status <= 599:
            raise ValueError("Fault.status must be an HTTP status code")

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return re.search(self.path_pattern, path) is not None

    def to_json(self) -> dict[str, Any]:
        """The fault as the control API shows it (camelCase: ``pathPattern``, ...)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """A fault from the control API's JSON (camelCase); ValueError names a bad field."""
        try:
            return msgspec.convert(dict(data), cls)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def from_body(cls, body: FaultBody) -> Fault:
        return cls(**msgspec.structs.asdict(body))


@dataclass
class _Active:
    id: str
    fault: Fault
    remaining: int  # -1 = unlimited
    hits: int = 0


@dataclass
class FaultHit:
    """What the middleware must do for one request."""

    id: str
    fault: Fault


@dataclass
class FaultInjector:
    """The in-process fault API (``Emulator.faults``). Thread-safe."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _active: list[_Active] = field(default_factory=list)
    fired: list[tuple[str, str, str]] = field(default_factory=list)  # (fault id, method, path)

    def add(self, fault: Fault) -> str:
        """Queue a fault; returns its id (for :meth:`remove`)."""
        fid = uuid.uuid4().hex[:12]
        with self._lock:
            self._active.append(_Active(fid, fault, fault.count))
        return fid

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._active)
            self._active = [a for a in self._active if a.id != fault_id]
            return len(self._active) != before

    def clear(self) -> None:
        with self._lock:
            self._active.clear()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"id": a.id, "remaining": a.remaining, "hits": a.hits, **a.fault.to_json()}
                for a in self._active
            ]

    def __len__(self) -> int:
        with self._lock:
            return len(self._active)

    def take(self, method: str, path: str) -> FaultHit | None:
        """Consume one use of the first matching fault, if any."""
        with self._lock:
            for a in self._active:
                if a.fault.matches(method, path):
                    a.hits += 1
                    if a.remaining > 0:
                        a.remaining -= 1
                        if a.remaining == 0:
                            self._active.remove(a)
                    self.fired.append((a.id, method, path))
                    return FaultHit(a.id, a.fault)
        return None
