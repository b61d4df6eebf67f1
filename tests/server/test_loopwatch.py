"""The loop watch: a callback that holds the event loop shows as lag, a collection as a GC
pause, each in its histogram."""

from __future__ import annotations

import asyncio
import gc
import time

from prometheus_client import CollectorRegistry

from commsgw.server._loopwatch import LoopWatch
from helpers.polling import eventually


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


async def test_a_held_loop_is_lag_and_a_collection_is_a_pause() -> None:
    registry = CollectorRegistry()
    watch = LoopWatch(registry, probe_s=0.01)
    task = asyncio.create_task(watch.run())
    try:
        await eventually(
            lambda: sample(registry, "commsgw_event_loop_lag_seconds_count") >= 1,
            what="a first probe",
        )
        time.sleep(0.06)  # noqa: ASYNC251 -- holds the loop on purpose: the probe fires late
        await eventually(
            lambda: sample(registry, "commsgw_event_loop_lag_seconds_sum") >= 0.04,
            what="the held loop measured",
        )
        assert sample(registry, "commsgw_event_loop_lag_seconds_bucket", le="0.025") < sample(
            registry, "commsgw_event_loop_lag_seconds_count"
        )
        before = sample(registry, "commsgw_gc_pause_seconds_count", generation="2")
        gc.collect()
        assert sample(registry, "commsgw_gc_pause_seconds_count", generation="2") == before + 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert watch._on_gc not in gc.callbacks  # the timer is off with the probe
