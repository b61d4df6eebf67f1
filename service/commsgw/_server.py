"""Server bootstrap: builds every part from Settings and runs gRPC and HTTP on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from typing import Any

import grpc
import httpx
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from commsgw._auth import TokenProvider
from commsgw._config import Settings
from commsgw._errors import CommsgwError, ConfigError
from commsgw._events import EventLog
from commsgw._graph import GraphClient
from commsgw._hub import Hub
from commsgw._jwt import InsecureNoValidation, NotificationTokenValidator
from commsgw._memlog import MemoryEventLog
from commsgw._servicer import CallsServicer
from commsgw._status import ErrorInterceptor
from commsgw._webhook import Webhook, build_app
from graphcomms.v1 import calls_pb2

log = logging.getLogger("commsgw.server")

SERVICE_NAME = calls_pb2.DESCRIPTOR.services_by_name["CallsService"].full_name


def _serialize(message: Any) -> bytes:
    """Responses may come pre-serialised (watch events shared by many subscribers)."""
    if isinstance(message, bytes):
        return message
    data: bytes = message.SerializeToString()
    return data


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


def make_event_log(settings: Settings) -> EventLog:
    if settings.event_log == "memory":
        return MemoryEventLog(
            max_events=settings.event_log_max_events, max_age_s=settings.event_log_max_age_s
        )
    from commsgw._redislog import RedisEventLog

    redis_log: EventLog = RedisEventLog(
        settings.event_log,
        key_prefix=settings.event_log_key,
        max_events=settings.event_log_max_events,
        max_age_s=settings.event_log_max_age_s,
    )
    return redis_log


class Gateway:
    """One gateway process: gRPC server, webhook, Graph client, event log and fan-out."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.grpc_port = 0
        self.http_port = 0
        self._http: httpx.AsyncClient | None = None
        self._server: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._health = health.aio.HealthServicer()
        self._tasks: set[asyncio.Task[None]] = set()
        self.log: EventLog = make_event_log(settings)
        self.hub = Hub(self.log, buffer=settings.subscriber_buffer)
        self.tokens = TokenProvider(settings)

    async def start(self) -> None:
        s = self.settings
        if s.insecure_skip_notification_auth:
            log.warning(
                "COMMSGW_INSECURE_SKIP_NOTIFICATION_AUTH is on: callbacks are NOT "
                "authenticated; anyone who reaches %s can inject events",
                s.http_addr,
            )
        self._http = httpx.AsyncClient(
            verify=_ssl_context(s),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            timeout=s.graph_timeout_s,
        )
        graph = GraphClient(s, self._http, self.tokens)
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
        self.webhook = Webhook(validator=validator, log_=self.log, max_bytes=s.webhook_max_bytes)
        app = build_app(self.webhook, s.webhook_path)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.http_addr.host, s.http_addr.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else s.http_addr.port

        self._server = grpc.aio.server(interceptors=[ErrorInterceptor()])
        servicer = CallsServicer(s, graph, self.hub, self.log)
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "CancelMediaProcessing": grpc.unary_unary_rpc_method_handler(
                servicer.CancelMediaProcessing,
                request_deserializer=calls_pb2.CancelMediaProcessingRequest.FromString,
                response_serializer=_serialize,
            ),
            "WatchOperations": grpc.unary_stream_rpc_method_handler(
                servicer.WatchOperations,
                request_deserializer=calls_pb2.WatchOperationsRequest.FromString,
                response_serializer=_serialize,
            ),
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        try:
            self.grpc_port = self._server.add_insecure_port(str(s.grpc_addr))
        except RuntimeError as exc:
            raise ConfigError(f"COMMSGW_GRPC_ADDR={s.grpc_addr}: cannot listen ({exc})") from None
        await self._server.start()
        await self._health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        self._spawn(self._warm())
        log.info(
            "commsgw ready: gRPC %s:%d, webhook http://%s:%d%s, Graph %s%s",
            s.grpc_addr.host,
            self.grpc_port,
            s.http_addr.host,
            self.http_port,
            s.webhook_path,
            s.graph_url,
            " (emulator)" if s.emulator_mode else "",
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm(self) -> None:
        try:
            await self.tokens.warm()
        except CommsgwError as err:
            log.warning("no Graph token yet: %s", err.message)

    async def stop(self, grace: float = 5.0) -> None:
        await self._health.enter_graceful_shutdown()
        self.hub.close()
        if self._server is not None:
            await self._server.stop(grace)
        if self._runner is not None:
            await self._runner.cleanup()
        for t in list(self._tasks):
            t.cancel()
        await self.log.close()
        if self._http is not None:
            await self._http.aclose()


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM."""
    gateway = Gateway(settings)
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await gateway.stop()
