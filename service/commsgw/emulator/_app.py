"""The emulator: its lifecycle (bind, TLS, start/stop), the routing of its fake services and
its Python API for tests (state, logs, faults, and the far end of the calls).

The services themselves live in ``_identity`` (the identity platform), ``_graph_api`` (the Graph
calls API) and ``_control`` (the ``/_emulator/`` test controls); they share an
:class:`~commsgw.emulator._state.EmulatorState`. Settings are in ``_config``, the middleware in
``_middleware``.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import re
import socket
from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import Any

from aiohttp import web

from commsgw.emulator._calls import Call
from commsgw.emulator._certs import ensure_tls_material
from commsgw.emulator._config import DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID, EmulatorConfig
from commsgw.emulator._control import Controls
from commsgw.emulator._delivery import DeliveryAttempt, NotificationDispatcher
from commsgw.emulator._faults import FaultInjector
from commsgw.emulator._graph_api import GraphApi
from commsgw.emulator._identity import IdentityPlatform
from commsgw.emulator._middleware import Middleware
from commsgw.emulator._remote import FarEnd
from commsgw.emulator._state import EmulatorState, RequestRecord
from commsgw.emulator._tokens import NOTIFICATION_ISSUER

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_TENANT_ID", "Emulator", "EmulatorConfig", "RequestRecord"]

_log = logging.getLogger("commsgw.emulator")


class Emulator(FarEnd):
    """A local HTTPS Graph (calls API) + token service + notification sender, and the far end
    of its calls (:class:`~commsgw.emulator._remote.FarEnd`: ``ring``, ``press_tones``,
    ``set_caller``, ``remote_hang_up``, ``drop``, ``misdeliver``, ``set_callee``, ...)."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        super().__init__(EmulatorState(config or EmulatorConfig()))
        self._identity = IdentityPlatform(self._state)
        self._graph = GraphApi(self._state)
        self._controls = Controls(self._state)
        self._middleware = Middleware(self._state.faults, self._state.request_log)
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        state, cfg = self._state, self.config
        state.tls = await asyncio.to_thread(ensure_tls_material, cfg.state_dir, cfg.host)
        sock = self._bind(cfg.host, cfg.port)
        state.port = sock.getsockname()[1]
        state.dispatcher = NotificationDispatcher(
            mint=lambda tid, aud: state.notif.mint(tenant_id=tid, audience=aud),
            delay_s=cfg.notification_delay,
            retries=cfg.notification_retries,
            backoff_s=cfg.notification_retry_backoff_s,
            batch=cfg.batch_notifications,
            verify=cfg.callback_verify,
        )
        app = web.Application(middlewares=[self._middleware.handle])
        app.add_routes([*self._identity.routes(), *self._graph.routes(), *self._controls.routes()])
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=state.tls.server_context())
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        _log.info("Graph emulator listening on %s (CA %s)", self.base_url, self.ca_path)

    async def stop(self) -> None:
        for call in self._state.calls.values():
            call.cancel_timers()
        if self._state.dispatcher is not None:
            await self._state.dispatcher.aclose()
            self._state.dispatcher = None
        if self._runner is not None:
            # Every connection aiohttp holds, those that never sent a request included (a
            # browser's spare connection), is aborted after the cleanup, so that idle keep-alive
            # TLS peers cannot keep a half-closed transport alive past the event loop.
            server = self._runner.server
            held = [h.transport for h in server.connections] if server is not None else []
            await self._runner.cleanup()
            self._runner = None
            for transport in held:
                if transport is not None:
                    transport.abort()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, stype, proto, _, addr = infos[0]
        sock = socket.socket(family, stype, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    # ------------------------------------------------------------------ shared state

    @property
    def config(self) -> EmulatorConfig:
        return self._state.config

    @property
    def faults(self) -> FaultInjector:
        return self._state.faults

    @property
    def request_log(self) -> list[RequestRecord]:
        return self._state.request_log

    @property
    def media_op_seconds(self) -> float:
        """Simulated duration of each media operation; may be changed live."""
        return self._state.media_op_seconds

    @media_op_seconds.setter
    def media_op_seconds(self, value: float) -> None:
        self._state.media_op_seconds = value

    @property
    def _dispatcher(self) -> NotificationDispatcher | None:
        # bench/ sets it to None (after closing it) to stop sending callbacks
        return self._state.dispatcher

    @_dispatcher.setter
    def _dispatcher(self, value: NotificationDispatcher | None) -> None:
        self._state.dispatcher = value

    # ------------------------------------------------------------------ public read API

    @property
    def port(self) -> int:
        return self._state.require_started()[1]

    @property
    def base_url(self) -> str:
        return self._state.base_url

    @property
    def graph_url(self) -> str:
        return self._state.graph_url

    @property
    def authority_host(self) -> str:
        return self.base_url

    def authority(self, tenant_id: str | None = None) -> str:
        """The MSAL authority URL for a tenant (default: the configured tenant)."""
        return f"{self.authority_host}/{tenant_id or self.config.tenant_id}"

    @property
    def graph_scope(self) -> str:
        return f"{self.base_url}/.default"

    @property
    def ca_path(self) -> pathlib.Path:
        return self._state.ca_path

    @property
    def notification_openid_config_url(self) -> str:
        return f"{self.base_url}/v1/.well-known/OpenIdConfiguration"

    @property
    def notification_jwks_url(self) -> str:
        return f"{self.base_url}/v1/.well-known/keys"

    @property
    def notification_issuer(self) -> str:
        return NOTIFICATION_ISSUER

    @property
    def calls(self) -> Mapping[str, Call]:
        """Read-only view: call id (lower-case dashed) -> Call (with .operations, .state)."""
        return MappingProxyType(self._state.calls)

    @property
    def delivery_log(self) -> list[DeliveryAttempt]:
        """Every callback POST attempt, in order."""
        return self._state.delivery_log

    @property
    def deliveries(self) -> list[tuple[str, int | None]]:
        """(url, status) of every callback POST attempt (status None = connection error)."""
        return [(a.url, a.status) for a in self.delivery_log]

    def served_routes(self) -> list[tuple[str, str]]:
        """(method, path template) of every route it serves (HEAD excepted), once started."""
        if self._runner is None:
            raise RuntimeError("emulator not started")
        return [
            (r.method, r.resource.canonical)
            for r in self._runner.app.router.routes()
            if r.resource is not None and r.method != "HEAD"
        ]

    def requests_to(self, path_pattern: str, method: str | None = None) -> list[RequestRecord]:
        rx = re.compile(path_pattern)
        return [
            r
            for r in self.request_log
            if rx.search(r.path) and (method is None or r.method.upper() == method.upper())
        ]

    async def reset(self) -> None:
        """Back to as started, for the next test: calls (ended without a notification), the
        request journal, faults, deliveries, queued notifications, callee settings and far-end
        scripts are gone, ``media_op_seconds`` is as configured (``POST /_emulator/reset``)."""
        await self._state.reset()

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far (Graph then answers 401)."""
        self._state.tokens.revoke_all()

    def rotate_notification_key(self, *, keep_old: bool = True) -> str:
        """Sign notifications with a new key (new kid); returns the new kid."""
        return self._state.notif.rotate(keep_old=keep_old)

    def issue_access_token(
        self, *, tenant_id: str | None = None, audience: str | None = None
    ) -> str:
        """An app token as the token endpoint would issue it (for tests that skip MSAL)."""
        token, _ = self._state.tokens.issue(
            tenant_id=tenant_id or self.config.tenant_id,
            client_id=self.config.client_id,
            audience=audience or self.base_url,
            credential_kind="secret",
        )
        return token

    def mint_notification_token(
        self,
        *,
        tenant_id: str,
        audience: str | None = None,
        expires_in: int = 300,
        kid: str | None = None,
        extra_headers: dict[str, Any] | None = None,
        rogue_key: bool = False,
        **claims: Any,
    ) -> str:
        """A notification bearer token like the ones the emulator sends.

        ``audience`` defaults to the client id; ``kid`` overrides the header kid (e.g. unknown);
        ``rogue_key`` signs with a key absent from the JWKS; ``claims`` override/add claims
        (e.g. ``iss=...``, ``nbf=...``); a negative ``expires_in`` gives an expired token.
        """
        return self._state.notif.mint(
            tenant_id=tenant_id,
            audience=audience or self.config.client_id,
            expires_in=expires_in,
            kid=kid,
            extra_headers=extra_headers,
            rogue_key=rogue_key,
            claims=claims,
        )

    async def notifications_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued callback notification has been delivered or dropped."""
        if self._state.dispatcher is not None:
            await self._state.dispatcher.idle(timeout)
