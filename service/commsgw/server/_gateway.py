"""The process bootstrap: builds every part from Settings and runs gRPC and HTTP on one loop.

`Gateway.start` opens the event log and the hub, then the HTTP side (webhook and probes), then
the gRPC side; `shutdown` drains and stops them in the reverse order within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time
from typing import Any

import grpc
import httpx
from aiohttp import web
from grpc_health.v1 import health, health_pb2

from commsgw._config import Settings
from commsgw._errors import CommsgwError
from commsgw._metrics import Metrics
from commsgw._tracing import Tracing
from commsgw.eventlog import EventLog, Hub, LogEntry, make_event_log
from commsgw.graph import GraphClient, Sender, TokenProvider, make_http_client, make_sender
from commsgw.keepalive import KeepAlive, Reconciler, make_registry
from commsgw.notifications import (
    InsecureNoValidation,
    NotificationTokenValidator,
    ToneOrder,
    Validator,
    Webhook,
    build_app,
)
from commsgw.server import _grpc, _http
from commsgw.server._callers import Callers
from commsgw.server._configs import PartConfigs, part_configs
from commsgw.server._interceptor import GatewayInterceptor
from commsgw.server._limits import StreamLimits
from commsgw.server._loopwatch import LoopWatch
from commsgw.server._probes import HubCollector, Probes, Readiness
from commsgw.server._servicer import CallsServicer

log = logging.getLogger("commsgw.server")

SERVICE_NAME = _grpc.SERVICE_NAME
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_INTERVAL_S = 1.0


class Gateway:
    """One gateway process: gRPC server, webhook, Graph client, event log and fan-out."""

    def __init__(self, settings: Settings, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.tracing = tracing or Tracing()
        self.grpc_port = 0
        self.http_port = 0
        self.metrics = Metrics()
        self.draining = False
        self.ready = False
        self._http: httpx.AsyncClient | None = None
        self._sender: Sender | None = None
        self._server: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._health = health.aio.HealthServicer()
        self._tasks: set[asyncio.Task[None]] = set()
        self.keepalive: KeepAlive | None = None
        self.reconciler: Reconciler | None = None
        # Each part's configuration; the callbackUri's is fixed once the HTTP port is bound.
        self.configs: PartConfigs = part_configs(settings)
        self.log: EventLog = make_event_log(self.configs.event_log)
        self.hub = Hub(self.log, buffer=settings.subscriber_buffer, on_dispatch=self._lag)
        self.tokens = TokenProvider(
            self.configs.tokens,
            tracing=self.tracing,
            on_refresh=lambda _t, forced: self.metrics.token_refreshes.labels(
                str(forced).lower()
            ).inc(),
        )
        self.callers = Callers.load(settings.callers_file) if settings.callers_file else None
        self.limits = StreamLimits(settings.max_streams, settings.max_streams_per_caller)
        self.metrics.registry.register(HubCollector(self.hub, self.limits))

    def _lag(self, entry: LogEntry) -> None:
        # Redis positions start with the append's milliseconds: their age is the read lag.
        ms = entry.position[0]
        if ms > 1_000_000_000_000:
            self.metrics.log_lag.set(max(0.0, time.time() - ms / 1000))

    def _on_graph_attempt(self, status: int | None, seconds: float, retry: bool) -> None:
        self.metrics.graph_requests.labels(str(status or 0)).inc()
        self.metrics.graph_latency.observe(seconds)
        if retry:
            self.metrics.graph_retries.inc()

    # ------------------------------------------------------------------ start

    @property
    def public_webhook_url(self) -> str:
        """The default callbackUri of the calls made and answered (emulator mode: the local
        webhook on the port bound)."""
        return self.configs.servicer.requests.public_webhook_url

    async def start(self) -> None:
        s = self.settings
        self._warn_about_exposure()
        # The HTTP port first: the callbackUri that the parts write (emulator mode: the local
        # webhook) is known before any of them is built.
        socks = await _http.bind(self.configs.http)
        self.http_port = _http.port_of(socks)
        c = self.configs = part_configs(s, http_port=self.http_port)
        self._sender = make_sender(c.transport)
        self._http = make_http_client(c.transport)
        graph = GraphClient(
            c.graph,
            self._sender,
            self.tokens,
            on_attempt=self._on_graph_attempt,
            tracing=self.tracing,
        )
        await self.hub.start()
        await self._start_http(self._validator(self._http), socks)
        self.reconciler = Reconciler(
            self.log,
            enabled=s.reconcile_calls,
            on_observed=lambda reason: self.metrics.observed_ends.labels(reason).inc(),
        )
        await self._start_grpc(
            CallsServicer(
                c.servicer, graph, self.hub, self.log, self.tracing, reconciler=self.reconciler
            )
        )
        if s.managed_keepalive:
            self.keepalive = KeepAlive(
                c.keepalive,
                graph,
                self.hub,
                make_registry(c.event_log),
                on_outcome=lambda outcome: self.metrics.keepalives.labels(outcome).inc(),
                reconciler=self.reconciler if s.reconcile_calls else None,
            )
            await self.keepalive.start()
        await self._update_health()
        self._spawn(self._monitor())
        if s.loop_lag_probe_s > 0:
            self._spawn(LoopWatch(self.metrics.registry, s.loop_lag_probe_s).run())
        log.info(
            "commsgw ready: gRPC %s:%d%s, webhook %s://%s:%d%s, Graph %s%s, event log %s",
            s.grpc_addr.host,
            self.grpc_port,
            " (TLS)" if s.grpc_tls_cert else "",
            "https" if s.http_tls_cert else "http",
            s.http_addr.host,
            self.http_port,
            s.webhook_path,
            s.graph_url,
            " (emulator)" if s.emulator_mode else "",
            "memory" if s.event_log == "memory" else "redis",
        )

    def _warn_about_exposure(self) -> None:
        s = self.settings
        for what, addr, secure in (
            ("gRPC", s.grpc_addr, s.grpc_tls_cert is not None),
            ("HTTP", s.http_addr, s.http_tls_cert is not None),
        ):
            if not addr.is_loopback and not secure:
                log.warning(
                    "%s listens on %s without TLS (COMMSGW_ALLOW_INSECURE_BIND)", what, addr
                )
        if s.callers_file is None and not s.grpc_addr.is_loopback:
            log.warning("no COMMSGW_CALLERS_FILE: every gRPC caller is trusted")
        if s.insecure_skip_notification_auth:
            log.warning(
                "COMMSGW_INSECURE_SKIP_NOTIFICATION_AUTH is on: callbacks are NOT "
                "authenticated; anyone who reaches %s can inject events",
                s.http_addr,
            )

    def _validator(self, http: httpx.AsyncClient) -> Validator:
        """How the webhook authenticates Graph's callbacks."""
        s = self.settings
        if s.insecure_skip_notification_auth:
            return InsecureNoValidation(default_tenant_id=s.tenant_id)
        return NotificationTokenValidator(
            openid_config_url=s.notification_openid_url, audience=s.client_id, http=http
        )

    async def _start_http(self, validator: Validator, socks: list[socket.socket]) -> None:
        s = self.settings
        self.webhook = Webhook(
            validator=validator,
            log_=self.log,
            max_bytes=s.webhook_max_bytes,
            rate=s.webhook_rate,
            metrics=self.metrics,
            # Room for the resume token and framing around the event in a watch response.
            max_event_bytes=max(s.max_message_bytes - 512, s.max_message_bytes // 2),
            tones=ToneOrder(self.hub.tones, s.tone_reorder_window_s),
            tracing=self.tracing,
        )
        if isinstance(validator, NotificationTokenValidator):
            # Load the signing keys now rather than on the first callback, so that a key
            # rotation's unknown kid is fetched at once instead of waiting out the refresh
            # throttle that the first load would start.
            self._spawn(self._warm_keys(validator))
        probes = Probes(self.metrics, self._readiness)
        app = build_app(self.webhook, s.webhook_path, extra_routes=probes.routes())
        self._runner = await _http.serve(app, socks, self.configs.http)

    async def _start_grpc(self, servicer: CallsServicer) -> None:
        interceptor = GatewayInterceptor(
            callers=self.callers,
            metrics=self.metrics,
            limits=self.limits,
            draining=lambda: self.draining,
            tracing=self.tracing,
        )
        self._server = _grpc.build(
            self.configs.grpc,
            servicer=servicer,
            interceptors=[interceptor],
            health_servicer=self._health,
        )
        self.grpc_port = _grpc.listen(self._server, self.configs.grpc)
        await self._server.start()

    # ------------------------------------------------------------------ health

    async def _warm_keys(self, validator: NotificationTokenValidator) -> None:
        try:
            await validator.warm()
        except CommsgwError as err:
            log.warning("notification signing keys not loaded yet: %s", err.message)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _readiness(self) -> Readiness:
        return Readiness(
            ready=self.ready and not self.draining,
            event_log=self.log.ready,
            graph_credentials=self.tokens.healthy is True,
            draining=self.draining,
        )

    async def _update_health(self) -> None:
        if self.draining:
            return
        if self.tokens.healthy is not True:
            try:
                await self.tokens.warm()
            except CommsgwError as err:
                log.warning("Graph credentials unusable: %s", err.message)
        ready = self.log.ready and self.tokens.healthy is True
        if ready != self.ready:
            log.info("readiness: %s", "ready" if ready else "NOT ready")
        self.ready = ready
        self.metrics.ready.set(1 if ready else 0)
        status = SERVING if ready else NOT_SERVING
        await self._health.set(SERVICE_NAME, status)
        await self._health.set("", status)

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL_S)
            await self._update_health()

    # ------------------------------------------------------------------ stop

    async def drain(self) -> None:
        """First step of shutdown: NOT_SERVING, new RPCs refused, watches get a final
        bookmark and end UNAVAILABLE; the webhook keeps accepting meanwhile."""
        self.draining = True
        self.ready = False
        await self._health.enter_graceful_shutdown()
        self.hub.close()

    async def shutdown(self) -> None:
        """The graceful stop (SIGTERM): drain, keep the webhook a little longer, stop, all
        within `shutdown_grace_s`."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        grace = self.settings.shutdown_grace_s
        log.info("shutting down: draining for up to %.1f s", grace)
        await self.drain()
        # The webhook keeps accepting callbacks a little longer, so none answered 202 is lost
        # while the load balancer notices this replica is going.
        await asyncio.sleep(min(self.settings.webhook_drain_s, grace / 2))
        await self.stop(max(0.0, grace - (loop.time() - started) - 0.5))
        log.info("stopped")

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.shutdown_grace_s if grace is None else grace
        if not self.draining:
            await self.drain()
        for t in list(self._tasks):
            t.cancel()
        if self.keepalive is not None:
            await self.keepalive.stop()
        if self._server is not None:
            await self._server.stop(grace)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.log.close()
        if self._http is not None:
            await self._http.aclose()
        self.tokens.close()
        if self._sender is not None:
            await self._sender.aclose()


async def until_stopped() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(settings: Settings, tracing: Tracing | None = None) -> None:
    """Run until SIGINT or SIGTERM, then drain and stop within the configured grace."""
    gateway = Gateway(settings, tracing)
    await gateway.start()
    # What start-up made (modules, classes, settings, the parts) lives as long as the process:
    # moved out of the collector's generations, a full collection no longer walks it, which
    # was the longest stall of the event loop under load (bench --loop-lag; bench/notes.md).
    gc.collect()
    gc.freeze()
    await until_stopped()
    await gateway.shutdown()
