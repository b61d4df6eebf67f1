"""What operators probe: /healthz, /readyz, /metrics, and the fan-out gauges read at scrape."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from commsgw._metrics import Metrics
from commsgw.eventlog import Hub
from commsgw.server._limits import StreamLimits

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HubCollector(Collector):
    """Fan-out counters read at scrape time (the hub keeps plain integers)."""

    def __init__(self, hub: Hub, limits: StreamLimits) -> None:
        self._hub = hub
        self._limits = limits

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "commsgw_events_delivered", "Events sent to subscribers", value=self._hub.delivered
        )
        yield GaugeMetricFamily(
            "commsgw_subscribers", "Open WatchOperations streams", value=self._limits.open
        )
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # scraped outside the event loop
            tasks = 0
        yield GaugeMetricFamily(
            "commsgw_asyncio_tasks",
            "Tasks alive on the gateway's event loop (a leak shows as growth)",
            value=tasks,
        )


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    event_log: bool
    graph_credentials: bool
    draining: bool


class Probes:
    """The probe routes, answering from `readiness()` and the metrics registry."""

    def __init__(self, metrics: Metrics, readiness: Callable[[], Readiness]) -> None:
        self._metrics = metrics
        self._readiness = readiness

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/healthz", self.healthz),
            ("GET", "/readyz", self.readyz),
            ("GET", "/metrics", self.metrics),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        r = self._readiness()
        body = {
            "ready": r.ready,
            "event_log": r.event_log,
            "graph_credentials": r.graph_credentials,
            "draining": r.draining,
        }
        return web.json_response(body, status=200 if r.ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": self._metrics.content_type}
        )
