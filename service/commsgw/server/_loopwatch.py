"""Stalls of the event loop, measured (opt-in: COMMSGW_LOOP_LAG_PROBE_S above 0).

Everything the gateway does runs on one event loop, so anything that holds it (a long
callback, a garbage collection, a burst of work in one step) delays every RPC, watch and POST
at once. Two histograms show it at /metrics:

- `commsgw_event_loop_lag_seconds`: how late a timer set `probe_s` ahead fires (a probe task
  sleeps `probe_s` and observes the overshoot);
- `commsgw_gc_pause_seconds{generation}`: each collection of the garbage collector, timed by
  `gc.callbacks` (collections run inside whatever allocation triggered them, on the loop).

The probe costs one timer per `probe_s`; the GC callback two clock reads per collection.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

STALL_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class LoopWatch:
    """The loop-lag probe and the GC pause timer, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry, probe_s: float) -> None:
        self.probe_s = probe_s
        self.lag = Histogram(
            "commsgw_event_loop_lag_seconds",
            f"How late a timer set {probe_s:g} s ahead fired on the event loop",
            buckets=STALL_BUCKETS,
            registry=registry,
        )
        self.gc_pause = Histogram(
            "commsgw_gc_pause_seconds",
            "Garbage collections, by generation",
            ["generation"],
            buckets=STALL_BUCKETS,
            registry=registry,
        )
        self._gc_started = 0.0
        self._gens = [self.gc_pause.labels(str(g)) for g in range(3)]

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gens[info["generation"]].observe(time.perf_counter() - self._gc_started)

    async def run(self) -> None:
        """Probe until cancelled; the GC timer is on meanwhile."""
        loop = asyncio.get_running_loop()
        gc.callbacks.append(self._on_gc)
        try:
            while True:
                due = loop.time() + self.probe_s
                await asyncio.sleep(self.probe_s)
                self.lag.observe(max(0.0, loop.time() - due))
        finally:
            gc.callbacks.remove(self._on_gc)
