"""The context of the RPC being served: who called, and what the call learned on the way.

The interceptor opens it (`begin`) once the caller is admitted; the servicer reads and fills it
(`current`); the interceptor writes the call's log line from it. Neither imports the other.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from commsgw.server._callers import TRUSTED, Identity


@dataclass(slots=True)
class RpcContext:
    identity: Identity = TRUSTED
    client_request_id: str = ""
    graph_request_id: str = ""
    span: Any = None  # the RPC's span, when traced


_current: contextvars.ContextVar[RpcContext] = contextvars.ContextVar("commsgw_rpc")


def begin() -> RpcContext:
    """A new context for the RPC running in this task (the trusted identity until admitted)."""
    ctx = RpcContext()
    _current.set(ctx)
    return ctx


def current() -> RpcContext:
    """The context of the RPC running in this task (a fresh trusted one outside an RPC)."""
    ctx = _current.get(None)
    return ctx if ctx is not None else begin()
