"""Managed keepAlive: Graph ends a call that got no keepAlive for 45 minutes, so the gateway
sends one for every established call it has seen, every COMMSGW_KEEPALIVE_INTERVAL_S (15
minutes by default), until the call terminates or keepAlive answers 404.

Owns the set of calls kept alive and their schedule. Which calls exist is learnt from the event
log (the call notifications every replica sees); with several replicas on Redis, the set is
shared in Redis (so a replica that starts, or restarts, takes over calls it never saw
established) and one replica per call and period wins a lease and sends the keepAlive.

Also owns reconciliation (`_reconcile`): a call that Graph answers 404 for, or that passes
Graph's idle limit with no sign of life, is reported ended to every subscriber through the log
(a CallUpdate of origin GATEWAY), once. May import the shared kernel, `commsgw.eventlog` and
`commsgw.graph`.
"""

from commsgw.keepalive._factory import make_registry
from commsgw.keepalive._keeper import KeepAlive, KeepAliveConfig
from commsgw.keepalive._reconcile import Reconciler, call_of_path
from commsgw.keepalive._registry import MemoryRegistry, Registry

__all__ = [
    "KeepAlive",
    "KeepAliveConfig",
    "MemoryRegistry",
    "Reconciler",
    "Registry",
    "call_of_path",
    "make_registry",
]
