"""The emulator: configuration, the aiohttp application and its handlers."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import pathlib
import re
import socket
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from aiohttp import web
from cryptography import x509

from commsgw._ids import normalize_guid
from commsgw.emulator._calls import (
    MEDIA_KINDS,
    TERMINATED_RESULT,
    Call,
    MediaEngine,
    Operation,
    call_notification,
    new_id,
)
from commsgw.emulator._certs import TlsMaterial, ensure_tls_material
from commsgw.emulator._delivery import DeliveryAttempt, NotificationDispatcher
from commsgw.emulator._faults import Fault, FaultInjector
from commsgw.emulator._tokens import (
    CLIENT_ASSERTION_TYPE,
    NOTIFICATION_ISSUER,
    AccessTokenIssuer,
    NotificationSigner,
    check_client_assertion,
)

_log = logging.getLogger("commsgw.emulator")

DEFAULT_TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
DEFAULT_CLIENT_ID = "00000000-0000-0000-0000-0000000000bb"
MAX_CLIENT_CONTEXT = 256

_TENANT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}$")
_TOKEN_PATH_RE = re.compile(r"^/[^/]+/oauth2(/v2\.0)?/token$")
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "*"}
# A tiny valid WAV (8 kHz mono 16-bit, 10 ms of silence) served as every recording.
_WAV = (
    b"RIFF"
    + (36 + 160).to_bytes(4, "little")
    + b"WAVEfmt "
    + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little")
    + (1).to_bytes(2, "little")
    + (8000).to_bytes(4, "little")
    + (16000).to_bytes(4, "little")
    + (2).to_bytes(2, "little")
    + (16).to_bytes(2, "little")
    + b"data"
    + (160).to_bytes(4, "little")
    + b"\x00" * 160
)

_REQUEST_ID = web.RequestKey("request_id", str)

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


def _utc_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _fmt_retry_after(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class _GraphError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class _AadError(Exception):
    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description


_DEFAULT_GRAPH_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Forbidden",
    404: "itemNotFound",
    405: "BadRequest",
    409: "Conflict",
    429: "activityLimitReached",
    500: "InternalServerError",
    502: "BadGateway",
    503: "serviceNotAvailable",
    504: "GatewayTimeout",
}
_DEFAULT_AAD_ERRORS = {
    400: ("invalid_request", 900144),
    401: ("invalid_client", 7000215),
    429: ("temporarily_unavailable", 50196),
    500: ("server_error", 50000),
    503: ("temporarily_unavailable", 50196),
}


class Emulator:
    """A local HTTPS Graph (calls subset) + token service + notification sender."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.faults = FaultInjector()
        self.request_log: list[RequestRecord] = []
        self.media_op_seconds: float = self.config.media_op_seconds  # may be changed live
        self._calls: dict[str, Call] = {}
        self._tokens = AccessTokenIssuer(self.config.token_lifetime_s)
        self._notif = NotificationSigner()
        self._registered_certs = [
            x509.load_pem_x509_certificate(pem.encode()) for pem in self.config.client_certificates
        ]
        self._engine = MediaEngine(
            notify=self._notify,
            op_seconds=lambda: self.media_op_seconds,
            recording_url=lambda op: f"{self.base_url}/_emulator/recordings/{op.id}",
            notify_running=self.config.notify_operation_running,
        )
        self._tls: TlsMaterial | None = None
        self._runner: web.AppRunner | None = None
        self._dispatcher: NotificationDispatcher | None = None
        self._port: int | None = None
        # client connections seen, aborted at stop() so idle keep-alive TLS peers (e.g. MSAL's
        # requests session) cannot keep a half-closed transport alive past the event loop
        # (a plain set, pruned as it grows: uvloop's transports cannot be weakly referenced)
        self._transports: set[asyncio.BaseTransport] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        cfg = self.config
        self._tls = await asyncio.to_thread(ensure_tls_material, cfg.state_dir, cfg.host)
        sock = self._bind(cfg.host, cfg.port)
        self._port = sock.getsockname()[1]
        self._dispatcher = NotificationDispatcher(
            mint=lambda tid, aud: self._notif.mint(tenant_id=tid, audience=aud),
            delay_s=cfg.notification_delay,
            retries=cfg.notification_retries,
            backoff_s=cfg.notification_retry_backoff_s,
            batch=cfg.batch_notifications,
            verify=cfg.callback_verify,
        )
        app = web.Application(middlewares=[self._middleware])
        self._add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=self._tls.server_context())
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        _log.info("Graph emulator listening on %s (CA %s)", self.base_url, self.ca_path)

    async def stop(self) -> None:
        for call in self._calls.values():
            for op in call.operations.values():
                if op.timer is not None:
                    op.timer.cancel()
                    op.timer = None
        if self._dispatcher is not None:
            await self._dispatcher.aclose()
            self._dispatcher = None
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

    # ------------------------------------------------------------------ public read API

    def _require_started(self) -> tuple[TlsMaterial, int]:
        if self._tls is None or self._port is None:
            raise RuntimeError("emulator not started")
        return self._tls, self._port

    @property
    def port(self) -> int:
        return self._require_started()[1]

    @property
    def base_url(self) -> str:
        port = self._require_started()[1]
        host = self.config.host
        if host in _WILDCARD_HOSTS:
            host = "127.0.0.1" if host != "::" else "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{port}"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

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
        return self._require_started()[0].ca_path

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
        return MappingProxyType(self._calls)

    @property
    def delivery_log(self) -> list[DeliveryAttempt]:
        """Every callback POST attempt, in order."""
        return self._dispatcher.attempts if self._dispatcher is not None else []

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
        self._tokens.revoke_all()

    def rotate_notification_key(self, *, keep_old: bool = True) -> str:
        """Sign notifications with a new key (new kid); returns the new kid."""
        return self._notif.rotate(keep_old=keep_old)

    def issue_access_token(
        self, *, tenant_id: str | None = None, audience: str | None = None
    ) -> str:
        """An app token as the token endpoint would issue it (for tests that skip MSAL)."""
        token, _ = self._tokens.issue(
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
        return self._notif.mint(
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
        if self._dispatcher is not None:
            await self._dispatcher.idle(timeout)

    # ------------------------------------------------------------------ plumbing

    def _notify(self, call: Call, notification: dict[str, Any]) -> None:
        if self._dispatcher is None:
            return
        self._dispatcher.submit(
            call.id, call.callback_uri, call.tenant_id, call.client_id, notification
        )

    def _own_origins(self, request: web.Request | None = None) -> set[str]:
        port = self._require_started()[1]
        hosts = {"127.0.0.1", "localhost", "[::1]"}
        if self.config.host not in _WILDCARD_HOSTS:
            hosts.add(f"[{self.config.host}]" if ":" in self.config.host else self.config.host)
        origins = {f"https://{h}:{port}" for h in hosts}
        if request is not None:
            origins.add(f"https://{request.host}")
        return origins

    @staticmethod
    def _origin(request: web.Request) -> str:
        return f"https://{request.host}"

    def _add_routes(self, app: web.Application) -> None:
        r = app.router
        # identity platform (what MSAL needs)
        r.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._h_openid_config)
        r.add_get("/{tenant}/.well-known/openid-configuration", self._h_openid_config)
        r.add_get("/{tenant}/discovery/instance", self._h_instance_discovery)
        r.add_get("/{tenant}/discovery/v2.0/keys", self._h_token_keys)
        r.add_get("/{tenant}/discovery/keys", self._h_token_keys)
        r.add_post("/{tenant}/oauth2/v2.0/token", self._h_token)
        r.add_post("/{tenant}/oauth2/token", self._h_token)
        # notification signing metadata (the api.aps.skype.com equivalent)
        r.add_get("/v1/.well-known/OpenIdConfiguration", self._h_notif_openid)
        r.add_get("/v1/.well-known/openidconfiguration", self._h_notif_openid)
        r.add_get("/v1/.well-known/keys", self._h_notif_keys)
        # Graph
        r.add_post("/v1.0/communications/calls", self._h_create_call)
        r.add_get("/v1.0/communications/calls/{call_id}", self._h_get_call)
        r.add_delete("/v1.0/communications/calls/{call_id}", self._h_delete_call)
        r.add_post("/v1.0/communications/calls/{call_id}/{action}", self._h_call_action)
        r.add_get("/v1.0/communications/calls/{call_id}/operations/{op_id}", self._h_get_operation)
        r.add_route("*", "/v1.0/{tail:.*}", self._h_graph_unknown)
        # admin (no auth, never faulted)
        r.add_get("/_emulator/health", self._h_admin_health)
        r.add_get("/_emulator/faults", self._h_admin_faults_list)
        r.add_post("/_emulator/faults", self._h_admin_faults_add)
        r.add_delete("/_emulator/faults", self._h_admin_faults_clear)
        r.add_post("/_emulator/revoke-tokens", self._h_admin_revoke)
        r.add_post("/_emulator/rotate-notification-key", self._h_admin_rotate)
        r.add_get("/_emulator/calls", self._h_admin_calls)
        r.add_get("/_emulator/calls/{call_id}", self._h_admin_call)
        r.add_get("/_emulator/requests", self._h_admin_requests)
        r.add_get("/_emulator/deliveries", self._h_admin_deliveries)
        r.add_get("/_emulator/recordings/{op_id}", self._h_admin_recording)

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = new_id()
        request[_REQUEST_ID] = rid
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

    async def _dispatch(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except _GraphError as exc:
            return self._graph_error(request, exc.status, exc.code, exc.message, exc.headers)
        except _AadError as exc:
            return self._aad_error(request, exc.status, exc.error, exc.aadsts, exc.description)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if _TOKEN_PATH_RE.match(request.path):
                error, aadsts = _DEFAULT_AAD_ERRORS.get(exc.status, ("invalid_request", 900144))
                return self._aad_error(request, exc.status, error, aadsts, exc.reason)
            code = _DEFAULT_GRAPH_CODES.get(exc.status, "UnknownError")
            return self._graph_error(request, exc.status, code, exc.reason)

    def _fault_response(self, request: web.Request, fault: Fault) -> web.Response:
        headers = dict(fault.headers or {})
        if fault.retry_after is not None:
            headers["Retry-After"] = _fmt_retry_after(fault.retry_after)
        if fault.body is not None:
            return web.json_response(fault.body, status=fault.status, headers=headers)
        if _TOKEN_PATH_RE.match(request.path):
            error, aadsts = _DEFAULT_AAD_ERRORS.get(fault.status, ("invalid_request", 900144))
            return self._aad_error(
                request,
                fault.status,
                fault.error_code or error,
                aadsts,
                fault.message or f"Injected fault ({fault.status}).",
                headers,
            )
        code = fault.error_code or _DEFAULT_GRAPH_CODES.get(fault.status, "UnknownError")
        return self._graph_error(
            request,
            fault.status,
            code,
            fault.message or f"Injected fault ({fault.status} {code}).",
            headers,
        )

    @staticmethod
    def _graph_error(
        request: web.Request,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        rid = request.get(_REQUEST_ID) or new_id()
        body = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": _utc_iso(),
                    "request-id": rid,
                    "client-request-id": request.headers.get("client-request-id", rid),
                },
            }
        }
        return web.json_response(body, status=status, headers=dict(headers or {}))

    @staticmethod
    def _aad_error(
        request: web.Request,
        status: int,
        error: str,
        aadsts: int,
        description: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        rid = request.get(_REQUEST_ID) or new_id()
        corr = request.headers.get("client-request-id", new_id())
        ts = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        if not description.startswith("AADSTS"):
            description = f"AADSTS{aadsts}: {description}"
        body = {
            "error": error,
            "error_description": (
                f"{description}\r\nTrace ID: {rid}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"
            ),
            "error_codes": [aadsts],
            "timestamp": ts,
            "trace_id": rid,
            "correlation_id": corr,
            "error_uri": f"https://{request.host}/error?code={aadsts}",
        }
        hdrs = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        hdrs.update(headers or {})
        return web.json_response(body, status=status, headers=hdrs)

    # ------------------------------------------------------------------ identity platform

    @staticmethod
    def _tenant_of(request: web.Request) -> str:
        tenant = request.match_info["tenant"]
        guid = normalize_guid(tenant)
        if guid is not None:
            return guid
        if tenant.lower() in ("common", "organizations", "consumers") or _TENANT_NAME_RE.match(
            tenant
        ):
            return tenant
        raise _AadError(
            400,
            "invalid_tenant",
            90002,
            f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct "
            f"tenant ID and are signing into the correct cloud.",
        )

    def _resolve_tenant(self, tenant: str) -> str:
        """The tid for a path tenant: GUIDs as-is, names map to the configured tenant."""
        return normalize_guid(tenant) or self.config.tenant_id

    async def _h_openid_config(self, request: web.Request) -> web.Response:
        tenant = self._tenant_of(request)
        o = f"{self._origin(request)}/{tenant}"
        v2 = "/v2.0" in request.path
        cfg = {
            "token_endpoint": f"{o}/oauth2/v2.0/token" if v2 else f"{o}/oauth2/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{o}/discovery/v2.0/keys" if v2 else f"{o}/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{o}/v2.0" if v2 else f"https://sts.windows.net/{tenant}/",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self._origin(request)}/oidc/userinfo",
            "authorization_endpoint": (
                f"{o}/oauth2/v2.0/authorize" if v2 else f"{o}/oauth2/authorize"
            ),
            "device_authorization_endpoint": f"{o}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{o}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
            "tenant_region_scope": "WW",
            "cloud_instance_name": "commsgw-emulator",
            "cloud_graph_host_name": request.host,
            "msgraph_host": request.host,
        }
        return web.json_response(cfg)

    async def _h_instance_discovery(self, request: web.Request) -> web.Response:
        """Serves MSAL's instance discovery when pointed here with ``instance_discovery=URL``."""
        auth = request.query.get("authorization_endpoint", "")
        parts = urlsplit(auth)
        segs = [s for s in parts.path.split("/") if s]
        tenant = segs[0] if segs else "common"
        # MSAL sends the authority's hostname without its port: answer with our own host.
        host = request.host
        return web.json_response(
            {
                "tenant_discovery_endpoint": (
                    f"https://{host}/{tenant}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
                ],
            }
        )

    async def _h_token_keys(self, request: web.Request) -> web.Response:
        self._tenant_of(request)
        return web.json_response(self._tokens.openid_keys())

    async def _h_token(self, request: web.Request) -> web.Response:
        tenant = self._tenant_of(request)
        tid = self._resolve_tenant(tenant)
        try:
            form = await request.post()
        except ValueError as exc:
            raise _AadError(400, "invalid_request", 900144, f"Malformed body: {exc}") from exc

        def form_value(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        grant = form_value("grant_type")
        if grant != "client_credentials":
            raise _AadError(
                400,
                "unsupported_grant_type",
                70003,
                f"AADSTS70003: The app requested an unsupported grant type '{grant}'. "
                f"The emulator only supports client_credentials.",
            )
        client_id = form_value("client_id")
        basic = request.headers.get("Authorization", "")
        basic_secret = ""
        if basic.lower().startswith("basic "):
            import base64
            from urllib.parse import unquote_plus

            try:
                user, _, pw = base64.b64decode(basic[6:]).decode().partition(":")
                client_id = client_id or unquote_plus(user)
                basic_secret = unquote_plus(pw)
            except (ValueError, UnicodeDecodeError):
                pass
        if not client_id:
            raise _AadError(
                400,
                "invalid_request",
                900144,
                "AADSTS900144: The request body must contain the following parameter: 'client_id'.",
            )
        if client_id != self.config.client_id:
            raise _AadError(
                401,
                "invalid_client",
                700016,
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
                f"directory '{tenant}'.",
            )
        secret = form_value("client_secret") or basic_secret
        assertion = form_value("client_assertion")
        if secret:
            if not hmac.compare_digest(secret.encode(), self.config.client_secret.encode()):
                raise _AadError(
                    401,
                    "invalid_client",
                    7000215,
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                    f"in the request is the client secret value, not the client secret ID, for "
                    f"a secret added to app '{client_id}'.",
                )
            kind = "secret"
        elif assertion:
            if form_value("client_assertion_type") != CLIENT_ASSERTION_TYPE:
                raise _AadError(
                    400,
                    "invalid_request",
                    50027,
                    f"AADSTS50027: client_assertion_type must be '{CLIENT_ASSERTION_TYPE}'.",
                )
            origins = self._own_origins(request)
            check = check_client_assertion(
                assertion,
                client_id=client_id,
                token_endpoints={f"{o}{request.path}" for o in origins},
                registered_certs=self._registered_certs,
            )
            if not check.ok:
                raise _AadError(401, "invalid_client", 700027, check.reason)
            kind = "certificate"
        else:
            raise _AadError(
                401,
                "invalid_client",
                7000218,
                "AADSTS7000218: The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        resource = self._resource_of(form_value("scope"), form_value("resource"))
        token, lifetime = self._tokens.issue(
            tenant_id=tid, client_id=client_id, audience=resource, credential_kind=kind
        )
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            },
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    @staticmethod
    def _resource_of(scope: str, resource: str) -> str:
        if resource and not scope:  # v1 endpoint
            return resource.rstrip("/")
        scopes = [s for s in scope.split() if s not in ("openid", "profile", "offline_access")]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise _AadError(
                400,
                "invalid_scope",
                1002012,
                f"AADSTS1002012: The provided value for scope {scope} is not valid. Client "
                f"credential flows must have a scope value with /.default suffixed to the "
                f"resource identifier (application ID URI).",
            )
        return scopes[0][: -len("/.default")].rstrip("/")

    # ------------------------------------------------------------------ notification metadata

    async def _h_notif_openid(self, request: web.Request) -> web.Response:
        o = self._origin(request)
        return web.json_response(
            {
                "issuer": NOTIFICATION_ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{o}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _h_notif_keys(self, request: web.Request) -> web.Response:
        return web.json_response(self._notif.jwks())

    # ------------------------------------------------------------------ Graph

    def _authenticate(self, request: web.Request) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {
            "WWW-Authenticate": (
                f'Bearer realm="", authorization_uri="{self.base_url}/common/oauth2/authorize", '
                f'client_id="00000003-0000-0000-c000-000000000000"'
            )
        }
        if scheme.lower() != "bearer" or not token.strip():
            raise _GraphError(
                401, "InvalidAuthenticationToken", "Access token is empty.", challenge
            )
        claims, reason = self._tokens.validate(
            token.strip(), {o.rstrip("/") for o in self._own_origins(request)}
        )
        if claims is None:
            raise _GraphError(401, "InvalidAuthenticationToken", reason, challenge)
        return claims

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _GraphError(
                400, "BadRequest", f"Unable to read JSON request payload: {exc}"
            ) from exc
        if not isinstance(body, dict):
            raise _GraphError(400, "BadRequest", "The request body must be a JSON object.")
        return body

    @staticmethod
    def _client_context(body: Mapping[str, Any]) -> str | None:
        value = body.get("clientContext")
        if value is None:
            return None
        if not isinstance(value, str):
            raise _GraphError(400, "BadRequest", "clientContext must be a string.")
        if len(value) > MAX_CLIENT_CONTEXT:
            raise _GraphError(
                400,
                "BadRequest",
                f"clientContext exceeds the maximum length of {MAX_CLIENT_CONTEXT} characters.",
            )
        return value

    def _live_call(self, raw_id: str) -> Call:
        cid = normalize_guid(raw_id)
        call = self._calls.get(cid) if cid else None
        if call is None or not call.alive:
            raise _GraphError(404, "itemNotFound", f"Call '{raw_id}' was not found.")
        return call

    def _op_location(self, call: Call, op_id: str) -> str:
        return f"{self.graph_url}/communications/calls/{call.id}/operations/{op_id}"

    async def _h_create_call(self, request: web.Request) -> web.Response:
        claims = self._authenticate(request)
        body = await self._json_body(request)
        callback = body.get("callbackUri")
        if not isinstance(callback, str) or not callback:
            raise _GraphError(400, "BadRequest", "callbackUri is required.")
        parts = urlsplit(callback)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _GraphError(400, "BadRequest", f"callbackUri '{callback}' is not a valid URL.")
        call = Call(
            id=new_id(),
            tenant_id=str(claims["tid"]),
            client_id=str(claims.get("appid", self.config.client_id)),
            callback_uri=callback,
            request=body,
        )
        self._calls[call.id] = call
        self._notify(call, call_notification(call, "updated"))
        call.state = "established"
        self._notify(call, call_notification(call, "updated"))
        resp_body = call.to_json()
        resp_body["state"] = "establishing"
        return web.json_response(
            resp_body,
            status=201,
            headers={"Location": f"{self.graph_url}/communications/calls/{call.id}"},
        )

    async def _h_get_call(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        call = self._live_call(request.match_info["call_id"])
        return web.json_response(call.to_json())

    async def _h_delete_call(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        call = self._live_call(request.match_info["call_id"])
        self._engine.cancel_all(call, notify=False)
        call.state = "terminated"
        call.result_info = dict(TERMINATED_RESULT)
        self._notify(call, call_notification(call, "deleted"))
        if self._dispatcher is not None:
            self._dispatcher.close_lane(call.id)
        return web.Response(status=204)

    async def _h_get_operation(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        call = self._live_call(request.match_info["call_id"])
        op = call.find_operation(normalize_guid(request.match_info["op_id"]) or "")
        if op is None:
            raise _GraphError(404, "itemNotFound", "Operation was not found.")
        return web.json_response(op.to_json())

    async def _h_call_action(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        action = request.match_info["action"]
        if action.lower().startswith("microsoft.graph."):
            action = action[len("microsoft.graph.") :]
        handlers = {
            "playprompt": self._act_media,
            "recordresponse": self._act_media,
            "subscribetotone": self._act_subscribe_to_tone,
            "cancelmediaprocessing": self._act_cancel_media,
        }
        act = handlers.get(action.lower())
        if act is None:
            raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{action}'.")
        call = self._live_call(request.match_info["call_id"])
        body = await self._json_body(request)
        ctx = self._client_context(body)
        kind = {
            "playprompt": "playPrompt",
            "recordresponse": "recordResponse",
            "subscribetotone": "subscribeToTone",
            "cancelmediaprocessing": "cancelMediaProcessing",
        }[action.lower()]
        return act(call, kind, ctx, body)

    def _act_media(
        self, call: Call, kind: str, ctx: str | None, body: dict[str, Any]
    ) -> web.Response:
        assert kind in MEDIA_KINDS
        if kind == "playPrompt":
            prompts = body.get("prompts")
            if not isinstance(prompts, list) or not prompts:
                raise _GraphError(400, "BadRequest", "prompts must be a non-empty array.")
        else:
            for key in (
                "maxRecordDurationInSeconds",
                "initialSilenceTimeoutInSeconds",
                "maxSilenceTimeoutInSeconds",
            ):
                value = body.get(key)
                if value is not None and (not isinstance(value, int) or value < 0):
                    raise _GraphError(400, "BadRequest", f"{key} must be a positive integer.")
        op = Operation(
            id=new_id(),
            call_id=call.id,
            kind=kind,
            client_context=ctx,
            status="notStarted",
            request=body,
        )
        self._engine.enqueue(call, op)
        return web.json_response(
            op.to_json(), status=200, headers={"Location": self._op_location(call, op.id)}
        )

    def _act_subscribe_to_tone(
        self, call: Call, kind: str, ctx: str | None, body: dict[str, Any]
    ) -> web.Response:
        op = Operation(
            id=new_id(),
            call_id=call.id,
            kind=kind,
            client_context=ctx,
            status="completed",
            request=body,
        )
        call.operations[op.id] = op
        return web.json_response(
            op.to_json(), status=200, headers={"Location": self._op_location(call, op.id)}
        )

    def _act_cancel_media(
        self, call: Call, kind: str, ctx: str | None, body: dict[str, Any]
    ) -> web.Response:
        op = Operation(
            id=new_id(),
            call_id=call.id,
            kind=kind,
            client_context=ctx,
            status="completed",
            request=body,
            location_id=new_id(),
        )
        self._engine.cancel_all(call, notify=True)
        call.operations[op.id] = op
        out = {
            "@odata.type": op.odata_type,
            "status": op.status,
            "clientContext": op.client_context,
            "id": op.id,
        }
        assert op.location_id is not None
        return web.json_response(
            out, status=200, headers={"Location": self._op_location(call, op.location_id)}
        )

    async def _h_graph_unknown(self, request: web.Request) -> web.Response:
        tail = request.match_info.get("tail", "")
        self._authenticate(request)
        if re.fullmatch(r"communications/calls(/[^/]+)?", tail):
            raise _GraphError(405, "BadRequest", f"{request.method} is not allowed here.")
        segment = tail.split("/")[-1] if tail else ""
        raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    # ------------------------------------------------------------------ admin

    async def _h_admin_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "baseUrl": self.base_url})

    async def _h_admin_faults_list(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": self.faults.active()})

    async def _h_admin_faults_add(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
        except ValueError as exc:
            return web.json_response({"error": f"invalid JSON: {exc}"}, status=400)
        items: list[Any]
        if isinstance(data, list):
            items = data
        elif isinstance(data, dict) and isinstance(data.get("faults"), list):
            items = data["faults"]
        else:
            items = [data]
        try:
            faults = [Fault.from_json(item) for item in items if isinstance(item, dict)]
            if len(faults) != len(items):
                raise ValueError("each fault must be a JSON object")
        except (TypeError, ValueError, re.error) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        ids = [self.faults.add(f) for f in faults]
        return web.json_response({"ids": ids, "faults": self.faults.active()}, status=201)

    async def _h_admin_faults_clear(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.Response(status=204)

    async def _h_admin_revoke(self, request: web.Request) -> web.Response:
        self.revoke_tokens()
        return web.Response(status=204)

    async def _h_admin_rotate(self, request: web.Request) -> web.Response:
        keep = request.query.get("keepOld", "true").lower() != "false"
        return web.json_response({"kid": self.rotate_notification_key(keep_old=keep)})

    async def _h_admin_calls(self, request: web.Request) -> web.Response:
        return web.json_response({"value": [c.snapshot() for c in self._calls.values()]})

    async def _h_admin_call(self, request: web.Request) -> web.Response:
        cid = normalize_guid(request.match_info["call_id"])
        call = self._calls.get(cid) if cid else None
        if call is None:
            raise _GraphError(404, "itemNotFound", "Unknown call.")
        return web.json_response(call.snapshot())

    async def _h_admin_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"value": [{**r._asdict()} for r in self.request_log]})

    async def _h_admin_deliveries(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "value": [
                    {k: v for k, v in a._asdict().items() if k != "payload"}
                    for a in self.delivery_log
                ]
            }
        )

    async def _h_admin_recording(self, request: web.Request) -> web.StreamResponse:
        op_id = normalize_guid(request.match_info["op_id"]) or ""
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        for call in self._calls.values():
            op = call.operations.get(op_id)
            if op is not None and op.recording_access_token:
                if not hmac.compare_digest(token.encode(), op.recording_access_token.encode()):
                    raise _GraphError(401, "InvalidAuthenticationToken", "Bad recording token.")
                return web.Response(body=_WAV, content_type="audio/wav")
        raise _GraphError(404, "itemNotFound", "Unknown recording.")
