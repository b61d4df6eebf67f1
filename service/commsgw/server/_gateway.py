"""Server bootstrap: builds every part from Settings and runs gRPC and HTTP on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from commsgw._config import Settings
from commsgw._errors import CommsgwError, ConfigError
from commsgw._metrics import Metrics
from commsgw.eventlog._base import EventLog, LogEntry
from commsgw.eventlog._hub import Hub
from commsgw.eventlog._memory import MemoryEventLog
from commsgw.graph import GraphClient, TokenProvider
from commsgw.notifications._jwt import InsecureNoValidation, NotificationTokenValidator
from commsgw.notifications._webhook import Webhook, build_app
from commsgw.server._callers import Callers
from commsgw.server._interceptor import GatewayInterceptor
from commsgw.server._limits import StreamLimits
from commsgw.server._servicer import CallsServicer
from commsgw.server._wire import lenient_deserializer, serialize
from graphcomms.v1 import calls_pb2

log = logging.getLogger("commsgw.server")

SERVICE_NAME = calls_pb2.DESCRIPTOR.services_by_name["CallsService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_INTERVAL_S = 1.0


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    if settings.ca_file is None:
        return ssl.create_default_context()
    if not settings.ca_file.is_file():
        hint = (
            " (start the emulator first: `commsgw emulator`, or `make run` which starts both)"
            if settings.emulator_mode
            else ""
        )
        raise ConfigError(f"COMMSGW_CA_FILE={settings.ca_file}: no such file{hint}")
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cafile=str(settings.ca_file))
    return ctx


def make_graph_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The one connection pool to Graph (and to the JWKS endpoint).

    httpx's own async pool degrades when many requests are in flight (httpx #3215); the
    aiohttp transport keeps the httpx API on aiohttp's connection pool.
    """
    verify = _ssl_context(settings)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    if settings.graph_http_transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(verify=verify, limits=limits, trust_env=False)
    return httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)


def make_http_client(settings: Settings, transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    """An httpx client on the Graph transport, for the JWKS fetches (closing it closes the
    transport)."""
    return httpx.AsyncClient(transport=transport, timeout=settings.graph_timeout_s)


def make_event_log(settings: Settings) -> EventLog:
    if settings.event_log == "memory":
        return MemoryEventLog(
            max_events=settings.event_log_max_events, max_age_s=settings.event_log_max_age_s
        )
    from commsgw.eventlog._redis import RedisEventLog

    redis_log: EventLog = RedisEventLog(
        settings.event_log,
        key_prefix=settings.event_log_key,
        max_events=settings.event_log_max_events,
        max_age_s=settings.event_log_max_age_s,
    )
    return redis_log


def _grpc_options(s: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_time_ms", int(s.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(s.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.max_connection_age_ms", int(s.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(s.max_connection_age_grace_s * 1000)),
        # gRPC core cancels calls that arrive faster than the server picks them up once more
        # than 1,000 (3,000 hard) are pending: a burst of reconnecting subscribers (a replica
        # restart) would lose streams. Let as many wait as the gateway would serve.
        ("grpc.server.max_pending_requests", max(1000, s.max_streams)),
        ("grpc.server.max_pending_requests_hard_limit", max(3000, 2 * s.max_streams)),
        ("grpc.max_receive_message_length", s.max_message_bytes),
        ("grpc.max_send_message_length", s.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


class _HubCollector(Collector):
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


class Gateway:
    """One gateway process: gRPC server, webhook, Graph client, event log and fan-out."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.grpc_port = 0
        self.http_port = 0
        self.metrics = Metrics()
        self.draining = False
        self.ready = False
        self._http: httpx.AsyncClient | None = None
        self._server: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._health = health.aio.HealthServicer()
        self._tasks: set[asyncio.Task[None]] = set()
        self.log: EventLog = make_event_log(settings)
        self.hub = Hub(self.log, buffer=settings.subscriber_buffer, on_dispatch=self._lag)
        self.tokens = TokenProvider(
            settings,
            on_refresh=lambda _t, forced: self.metrics.token_refreshes.labels(
                str(forced).lower()
            ).inc(),
        )
        self.callers = Callers.load(settings.callers_file) if settings.callers_file else None
        self.limits = StreamLimits(settings.max_streams, settings.max_streams_per_caller)
        self.metrics.registry.register(_HubCollector(self.hub, self.limits))

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

    async def start(self) -> None:
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
        transport = make_graph_transport(s)
        self._http = make_http_client(s, transport)
        graph = GraphClient(s, transport, self.tokens, on_attempt=self._on_graph_attempt)
        await self.hub.start()

        validator: Any
        if s.insecure_skip_notification_auth:
            validator = InsecureNoValidation(default_tenant_id=s.tenant_id)
        else:
            validator = NotificationTokenValidator(
                openid_config_url=s.notification_openid_url,
                audience=s.client_id,
                http=self._http,
            )
        self.webhook = Webhook(
            validator=validator,
            log_=self.log,
            max_bytes=s.webhook_max_bytes,
            rate=s.webhook_rate,
            metrics=self.metrics,
            # Room for the resume token and framing around the event in a watch response.
            max_event_bytes=max(s.max_message_bytes - 512, s.max_message_bytes // 2),
        )
        app = build_app(
            self.webhook,
            s.webhook_path,
            extra_routes=[
                ("GET", "/healthz", self._healthz),
                ("GET", "/readyz", self._readyz),
                ("GET", "/metrics", self._metrics_page),
            ],
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        http_ssl: ssl.SSLContext | None = None
        if s.http_tls_cert is not None and s.http_tls_key is not None:
            http_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            http_ssl.load_cert_chain(str(s.http_tls_cert), str(s.http_tls_key))
        site = web.TCPSite(
            self._runner,
            s.http_addr.host,
            s.http_addr.port,
            reuse_address=True,
            ssl_context=http_ssl,
        )
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"COMMSGW_HTTP_ADDR={s.http_addr}: cannot listen ({exc})") from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else s.http_addr.port

        interceptor = GatewayInterceptor(
            callers=self.callers,
            metrics=self.metrics,
            limits=self.limits,
            draining=lambda: self.draining,
        )
        self._server = grpc.aio.server(interceptors=[interceptor], options=_grpc_options(s))
        servicer = CallsServicer(s, graph, self.hub, self.log)
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "CancelMediaProcessing": grpc.unary_unary_rpc_method_handler(
                servicer.CancelMediaProcessing,
                request_deserializer=lenient_deserializer(calls_pb2.CancelMediaProcessingRequest),
                response_serializer=serialize,
            ),
            "WatchOperations": grpc.unary_stream_rpc_method_handler(
                servicer.WatchOperations,
                request_deserializer=lenient_deserializer(calls_pb2.WatchOperationsRequest),
                response_serializer=serialize,
            ),
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if s.reflection:
            reflection.enable_server_reflection(
                (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
            )
        try:
            if s.grpc_tls_cert is not None and s.grpc_tls_key is not None:
                creds = grpc.ssl_server_credentials(
                    [(s.grpc_tls_key.read_bytes(), s.grpc_tls_cert.read_bytes())],
                    root_certificates=(
                        s.grpc_client_ca.read_bytes() if s.grpc_client_ca is not None else None
                    ),
                    require_client_auth=s.grpc_client_ca is not None,
                )
                self.grpc_port = self._server.add_secure_port(str(s.grpc_addr), creds)
            else:
                self.grpc_port = self._server.add_insecure_port(str(s.grpc_addr))
        except RuntimeError as exc:
            raise ConfigError(f"COMMSGW_GRPC_ADDR={s.grpc_addr}: cannot listen ({exc})") from None
        await self._server.start()
        await self._update_health()
        self._spawn(self._monitor())
        log.info(
            "commsgw ready: gRPC %s:%d%s, webhook %s://%s:%d%s, Graph %s%s, event log %s",
            s.grpc_addr.host,
            self.grpc_port,
            " (TLS)" if s.grpc_tls_cert else "",
            "https" if http_ssl else "http",
            s.http_addr.host,
            self.http_port,
            s.webhook_path,
            s.graph_url,
            " (emulator)" if s.emulator_mode else "",
            "memory" if s.event_log == "memory" else "redis",
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, request: web.Request) -> web.Response:
        body = {
            "ready": self.ready and not self.draining,
            "event_log": self.log.ready,
            "graph_credentials": self.tokens.healthy is True,
            "draining": self.draining,
        }
        return web.json_response(body, status=200 if body["ready"] else 503)

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type}
        )

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
        if self._server is not None:
            await self._server.stop(grace)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.log.close()
        if self._http is not None:
            await self._http.aclose()


async def until_stopped() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then drain and stop within the configured grace."""
    gateway = Gateway(settings)
    await gateway.start()
    await until_stopped()
    await gateway.shutdown()
