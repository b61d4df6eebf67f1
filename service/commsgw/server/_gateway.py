"""The process bootstrap: builds every part from Settings and runs gRPC and HTTP on one loop.

`Gateway.start` (or `async with Gateway(...)`) binds the HTTP port, opens the Graph clients,
the event log and the hub, then serves HTTP (webhook and probes), then gRPC, then starts
managed keepAlive and the monitors (`Gateway.STEPS`). Each step registers the cleanup of what
it opened on one `AsyncExitStack`: a start that fails closes what was opened before raising,
and `stop` closes everything in reverse, every cleanup running even when one fails.
`shutdown` drains first and stops within the grace period. Each part gets its own small
configuration, derived from the settings here (`_configs`) and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import socket
import time
from typing import Any

from grpc_health.v1 import health, health_pb2

from commsgw._config import Settings
from commsgw._errors import CommsgwError
from commsgw._metrics import Metrics
from commsgw._tracing import Tracing
from commsgw.eventlog import EventLog, Hub, LogEntry, make_event_log
from commsgw.graph import GraphClient, Sender, TokenProvider, make_sender, ssl_context
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
# How long a stop lets the signing keys' warm-up finish before cancelling it: cancelled in its
# TLS handshake, httpx's connection pool (httpcore, under COMMSGW_GRAPH_HTTP_TRANSPORT=httpx)
# does not close the new connection's socket (it closes it on an Exception only, and
# cancellation is not one).
KEYS_WARMUP_FINISH_S = 2.0


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
        self._sender: Sender | None = None
        self._http_socks: list[socket.socket] = []
        self._health = health.aio.HealthServicer()
        # What start opened, closed by stop; None when not started (or stopped).
        self._stack: contextlib.AsyncExitStack | None = None
        self._grace = settings.shutdown_grace_s
        self.graph: GraphClient | None = None
        self.keepalive: KeepAlive | None = None
        self.reconciler: Reconciler | None = None
        # Each part's configuration. The log and the tokens (built here) do not depend on the
        # port; start's first step binds the HTTP port and derives them again with the port
        # bound, before any part that writes the callbackUri is built.
        self.configs: PartConfigs = part_configs(settings)
        self.log: EventLog = make_event_log(self.configs.event_log)
        self.hub = Hub(self.log, buffer=settings.subscriber_buffer, on_dispatch=self._lag)
        # DTMF order: follows every call update the hub dispatches, from its first.
        self.tones = ToneOrder(self.hub, settings.tone_reorder_window_s)
        # Graph's app tokens: made with the sender, by start's `_open_graph`.
        self.tokens: TokenProvider
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

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open every part, in `STEPS` order. When a step fails, what the steps before it
        opened is closed again (in reverse) before its error is raised."""
        if self._stack is not None:
            raise RuntimeError("Gateway.start called twice")
        self._warn_about_exposure()
        stack = contextlib.AsyncExitStack()
        try:
            for step in self.STEPS:
                await getattr(self, step)(stack)
        except BaseException:
            try:
                await stack.aclose()
            except Exception:  # the start's own error is the one to raise
                log.exception("cleaning up after a failed start")
            raise
        self._stack = stack
        s = self.settings
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

    # Each step opens its part and registers, on the stack, the cleanup of what it opened; the
    # stack closes them in reverse (monitors, keepAlive, gRPC, HTTP, the log, the Graph
    # clients, the HTTP port).
    STEPS = (
        "_bind_http",
        "_open_graph",
        "_open_log",
        "_serve_http",
        "_serve_grpc",
        "_start_keepalive",
        "_start_monitors",
    )

    def _on_stop(self, stack: contextlib.AsyncExitStack, what: str, close: Any) -> None:
        """Register `close` (sync or async) on the stack; a failure is logged with what it
        closes, then raised once every other cleanup has run."""

        async def cleanup() -> None:
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("stopping %s failed", what)
                raise

        stack.push_async_callback(cleanup)

    async def _bind_http(self, stack: contextlib.AsyncExitStack) -> None:
        # The HTTP port first: the callbackUri that the parts write (emulator mode: the local
        # webhook) is known before any of them is built.
        socks = await _http.bind(self.configs.http)
        self._on_stop(stack, "the HTTP listening sockets", functools.partial(_http.close, socks))
        self._http_socks = socks
        self.http_port = _http.port_of(socks)
        self.configs = part_configs(self.settings, http_port=self.http_port)

    async def _open_graph(self, stack: contextlib.AsyncExitStack) -> None:
        c = self.configs
        # The one TLS context: Graph, the signing keys and the token authority (MSAL's requests
        # go through the same sender).
        self.tls = ssl_context(c.transport)
        self._sender = sender = make_sender(c.transport, self.tls)
        self._on_stop(stack, "the Graph connection pool", sender.aclose)
        self.tokens = TokenProvider(
            c.tokens,
            sender=sender,
            tracing=self.tracing,
            on_refresh=lambda _t, forced: self.metrics.token_refreshes.labels(
                str(forced).lower()
            ).inc(),
        )
        self._on_stop(stack, "the token provider", self.tokens.close)
        self.graph = GraphClient(
            c.graph, sender, self.tokens, on_attempt=self._on_graph_attempt, tracing=self.tracing
        )

    async def _open_log(self, stack: contextlib.AsyncExitStack) -> None:
        self._on_stop(stack, "the event log", self.log.close)
        await self.hub.start()
        self._on_stop(stack, "the hub", self.hub.aclose)

    async def _serve_http(self, stack: contextlib.AsyncExitStack) -> None:
        s = self.settings
        assert self._sender is not None  # _open_graph's
        validator = self._validator(self._sender)
        self.webhook = Webhook(
            validator=validator,
            log_=self.log,
            max_bytes=s.webhook_max_bytes,
            rate=s.webhook_rate,
            metrics=self.metrics,
            # Room for the resume token and framing around the event in a watch response.
            max_event_bytes=max(s.max_message_bytes - 512, s.max_message_bytes // 2),
            tones=self.tones,
            tracing=self.tracing,
        )
        probes = Probes(self.metrics, self._readiness)
        app = build_app(self.webhook, s.webhook_path, extra_routes=probes.routes())
        runner = await _http.serve(app, self._http_socks, self.configs.http)
        self._on_stop(stack, "the HTTP server", runner.cleanup)
        if isinstance(validator, NotificationTokenValidator):
            # Load the signing keys now rather than on the first callback, so that a key
            # rotation's unknown kid is fetched at once instead of waiting out the refresh
            # throttle that the first load would start.
            self._spawn(
                stack,
                "loading the signing keys",
                self._warm_keys(validator),
                finish_s=KEYS_WARMUP_FINISH_S,
            )

    async def _serve_grpc(self, stack: contextlib.AsyncExitStack) -> None:
        s, c = self.settings, self.configs
        assert self.graph is not None  # _open_graph's
        self.reconciler = Reconciler(
            self.log,
            enabled=s.reconcile_calls,
            on_observed=lambda reason: self.metrics.observed_ends.labels(reason).inc(),
        )
        servicer = CallsServicer(
            c.servicer, self.graph, self.hub, self.log, self.tracing, reconciler=self.reconciler
        )
        interceptor = GatewayInterceptor(
            callers=self.callers,
            metrics=self.metrics,
            limits=self.limits,
            draining=lambda: self.draining,
            tracing=self.tracing,
        )
        server = _grpc.build(
            c.grpc, servicer=servicer, wrap=interceptor.wrap, health_servicer=self._health
        )
        self._on_stop(stack, "the gRPC server", lambda: server.stop(self._grace))
        self.grpc_port = _grpc.listen(server, c.grpc)
        await server.start()

    async def _start_keepalive(self, stack: contextlib.AsyncExitStack) -> None:
        s = self.settings
        if not s.managed_keepalive:
            return
        assert self.graph is not None  # _open_graph's
        registry = make_registry(self.configs.event_log)
        self._on_stop(stack, "the keepAlive registry", registry.close)
        self.keepalive = keepalive = KeepAlive(
            self.configs.keepalive,
            self.graph,
            self.hub,
            registry,
            on_outcome=lambda outcome: self.metrics.keepalives.labels(outcome).inc(),
            reconciler=self.reconciler if s.reconcile_calls else None,
        )
        self._on_stop(stack, "managed keepAlive", keepalive.stop)
        await keepalive.start()

    async def _start_monitors(self, stack: contextlib.AsyncExitStack) -> None:
        s = self.settings
        await self._update_health()
        self._spawn(stack, "the health monitor", self._monitor())
        if s.loop_lag_probe_s > 0:
            watch = LoopWatch(self.metrics.registry, s.loop_lag_probe_s)
            self._spawn(stack, "the loop lag probe", watch.run())

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

    def _validator(self, sender: Sender) -> Validator:
        """How the webhook authenticates Graph's callbacks."""
        s = self.settings
        if s.insecure_skip_notification_auth:
            return InsecureNoValidation(default_tenant_id=s.tenant_id)
        return NotificationTokenValidator(
            openid_config_url=s.notification_openid_url,
            audience=s.client_id,
            sender=sender,
            timeout_s=s.graph_timeout_s,
        )

    # ------------------------------------------------------------------ health

    async def _warm_keys(self, validator: NotificationTokenValidator) -> None:
        try:
            await validator.warm()
        except CommsgwError as err:
            log.warning("notification signing keys not loaded yet: %s", err.message)

    def _spawn(
        self, stack: contextlib.AsyncExitStack, what: str, coro: Any, *, finish_s: float = 0.0
    ) -> None:
        """Run `coro` as a task; when the stack closes, it gets `finish_s` seconds to end by
        itself, then it is cancelled and waited for."""
        task = asyncio.get_running_loop().create_task(coro)

        async def cancel() -> None:
            if finish_s > 0:
                await asyncio.wait([task], timeout=finish_s)
            task.cancel()
            await asyncio.wait([task])

        self._on_stop(stack, what, cancel)

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
        """Drain, then close every part that `start` opened, in reverse; each cleanup runs
        even when one before it fails (that failure is logged and raised at the end)."""
        self._grace = self.settings.shutdown_grace_s if grace is None else grace
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            if not self.draining:
                await self.drain()
        finally:
            await stack.aclose()


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
    async with Gateway(settings, tracing) as gateway:
        # What start-up made (modules, classes, settings, the parts) lives as long as the
        # process: moved out of the collector's generations, a full collection no longer walks
        # it, which was the longest stall of the event loop under load (bench --loop-lag;
        # bench/notes.md).
        gc.collect()
        gc.freeze()
        await until_stopped()
        await gateway.shutdown()
