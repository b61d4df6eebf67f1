"""The emulator: its configuration, lifecycle (bind, TLS, start/stop), the middleware (request
ids, fault injection, the request log, error rendering) and the routing of its fake services.

The services themselves live in ``_identity`` (the identity platform), ``_graph_api`` (the Graph
calls API) and ``_control`` (the ``/_emulator/`` test controls); they share an
:class:`~commsgw.emulator._state.EmulatorState`.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import re
import socket
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, NamedTuple

from aiohttp import web

from commsgw.emulator._calls import Call, new_id
from commsgw.emulator._certs import ensure_tls_material
from commsgw.emulator._control import Controls
from commsgw.emulator._delivery import DeliveryAttempt, NotificationDispatcher
from commsgw.emulator._faults import Fault, FaultInjector
from commsgw.emulator._graph_api import GraphApi, GraphError, default_graph_code, graph_error
from commsgw.emulator._identity import (
    AadError,
    IdentityPlatform,
    aad_error,
    default_aad_error,
    is_token_path,
)
from commsgw.emulator._state import REQUEST_ID, EmulatorState
from commsgw.emulator._tokens import NOTIFICATION_ISSUER

_log = logging.getLogger("commsgw.emulator")

DEFAULT_TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
DEFAULT_CLIENT_ID = "00000000-0000-0000-0000-0000000000bb"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _default_state_dir() -> pathlib.Path:
    return pathlib.Path(tempfile.mkdtemp(prefix="commsgw-emulator-"))


@dataclass(frozen=True)
class EmulatorConfig:
    """Settings of one emulator instance (all optional)."""

    host: str = "127.0.0.1"
    port: int = 8443  # 0 = pick a free port
    state_dir: pathlib.Path = field(default_factory=_default_state_dir)
    tenant_id: str = DEFAULT_TENANT_ID  # default tenant; any tenant GUID is accepted in paths
    client_id: str = DEFAULT_CLIENT_ID  # the one app registration it knows
    client_secret: str = "emulator-secret"
    media_op_seconds: float = 1.0  # simulated duration of each playPrompt / recordResponse
    notification_delay: float = 0.0  # sleep before each callback POST
    token_lifetime_s: int = 3600
    # --- extras (not needed for the basic flow) ---
    # PEM certificates registered for the app: when non-empty, client assertions must be signed
    # by one of them (matched by x5t / x5t#S256); when empty, see check_client_assertion.
    client_certificates: tuple[str, ...] = ()
    notification_retries: int = 3  # retries after the first failed callback POST
    notification_retry_backoff_s: float = 0.05  # doubled after each failed attempt
    batch_notifications: bool = False  # put all pending notifications of a call in one POST
    notify_operation_running: bool = False  # send "updated"/running when a queued op starts
    callback_verify: bool | str = True  # httpx `verify` for https callbacks (bool or CA path)


class RequestRecord(NamedTuple):
    """One request the emulator answered (``status`` 0 = connection reset by a fault)."""

    method: str
    path: str
    status: int
    headers: dict[str, str]


def _fmt_retry_after(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Emulator:
    """A local HTTPS Graph (calls subset) + token service + notification sender."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self._state = EmulatorState(config or EmulatorConfig())
        self._identity = IdentityPlatform(self._state)
        self._graph = GraphApi(self._state)
        self._controls = Controls(self._state)
        self._runner: web.AppRunner | None = None
        # client connections seen, aborted at stop() so idle keep-alive TLS peers (e.g. MSAL's
        # requests session) cannot keep a half-closed transport alive past the event loop
        # (a plain set, pruned as it grows: uvloop's transports cannot be weakly referenced)
        self._transports: set[asyncio.BaseTransport] = set()

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
        app = web.Application(middlewares=[self._middleware])
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
            for op in call.operations.values():
                if op.timer is not None:
                    op.timer.cancel()
                    op.timer = None
        if self._state.dispatcher is not None:
            await self._state.dispatcher.aclose()
            self._state.dispatcher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for transport in list(self._transports):
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        self._transports = set()

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

    def requests_to(self, path_pattern: str, method: str | None = None) -> list[RequestRecord]:
        rx = re.compile(path_pattern)
        return [
            r
            for r in self.request_log
            if rx.search(r.path) and (method is None or r.method.upper() == method.upper())
        ]

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

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = new_id()
        request[REQUEST_ID] = rid
        if request.transport is not None and request.transport not in self._transports:
            if len(self._transports) >= 256:
                self._transports = {t for t in self._transports if not t.is_closing()}
            self._transports.add(request.transport)
        path = request.path
        crid = request.headers.get("client-request-id")
        hit = None if path.startswith("/_emulator/") else self.faults.take(request.method, path)
        status = 0
        resp: web.StreamResponse | None = None
        try:
            if hit is not None:
                fault = hit.fault
                _log.info("fault %s fires on %s %s", hit.id, request.method, path)
                if fault.delay_s > 0:
                    # Buffer the body first: a stalled passthrough request still takes effect
                    # even when the client gives up meanwhile (an ambiguous outcome).
                    await request.read()
                    await asyncio.sleep(fault.delay_s)
                if fault.reset_connection:
                    self._abort(request)
                    raise asyncio.CancelledError()  # nothing to send: the peer is gone
                if fault.passthrough:
                    resp = await self._dispatch(request, handler)
                else:
                    resp = self._fault_response(request, fault)
            else:
                resp = await self._dispatch(request, handler)
            resp.headers["request-id"] = rid
            if crid:
                resp.headers["client-request-id"] = crid
            status = resp.status
            return resp
        finally:
            logged = {
                k: v
                for k, v in (
                    ("client-request-id", crid),
                    ("content-type", request.headers.get("Content-Type")),
                    ("authorization", request.headers.get("Authorization", "").split(" ")[0]),
                    ("request-id", rid),
                    ("location", resp.headers.get("Location") if resp is not None else None),
                    ("retry-after", resp.headers.get("Retry-After") if resp is not None else None),
                    ("x-emulator-fault", hit.id if hit is not None else None),
                )
                if v
            }
            self.request_log.append(RequestRecord(request.method, path, status, logged))

    @staticmethod
    def _abort(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    @staticmethod
    async def _dispatch(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except (GraphError, AadError) as exc:
            return exc.response(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if is_token_path(request.path):
                error, aadsts = default_aad_error(exc.status)
                return aad_error(request, exc.status, error, aadsts, exc.reason)
            return graph_error(request, exc.status, default_graph_code(exc.status), exc.reason)

    @staticmethod
    def _fault_response(request: web.Request, fault: Fault) -> web.Response:
        headers = dict(fault.headers or {})
        if fault.retry_after is not None:
            headers["Retry-After"] = _fmt_retry_after(fault.retry_after)
        if fault.body is not None:
            return web.json_response(fault.body, status=fault.status, headers=headers)
        if is_token_path(request.path):
            error, aadsts = default_aad_error(fault.status)
            return aad_error(
                request,
                fault.status,
                fault.error_code or error,
                aadsts,
                fault.message or f"Injected fault ({fault.status}).",
                headers,
            )
        code = fault.error_code or default_graph_code(fault.status)
        return graph_error(
            request,
            fault.status,
            code,
            fault.message or f"Injected fault ({fault.status} {code}).",
            headers,
        )
