"""The fake Microsoft identity platform MSAL talks to, and the notification-signing metadata.

Owns the openid configuration, instance discovery, the token-signing keys, the token endpoint
(client_credentials with a secret or a certificate client assertion), tenant resolution, and
AAD-style error bodies; also the notification signer's openid configuration and JWKS (the
api.aps.skype.com equivalent), since those too only publish signing keys.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import re
from collections.abc import Mapping
from urllib.parse import unquote_plus, urlsplit

from aiohttp import web
from cryptography import x509

from commsgw._ids import normalize_guid
from commsgw.emulator._calls import new_id
from commsgw.emulator._state import REQUEST_ID, EmulatorState, origin
from commsgw.emulator._tokens import (
    CLIENT_ASSERTION_TYPE,
    NOTIFICATION_ISSUER,
    check_client_assertion,
)

_TENANT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}$")
_TOKEN_PATH_RE = re.compile(r"^/[^/]+/oauth2(/v2\.0)?/token$")
_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
_DEFAULT_AAD_ERRORS = {
    400: ("invalid_request", 900144),
    401: ("invalid_client", 7000215),
    429: ("temporarily_unavailable", 50196),
    500: ("server_error", 50000),
    503: ("temporarily_unavailable", 50196),
}


def is_token_path(path: str) -> bool:
    """Whether errors on ``path`` are the token endpoint's (AAD-style, not Graph-style)."""
    return _TOKEN_PATH_RE.match(path) is not None


def default_aad_error(status: int) -> tuple[str, int]:
    """The ``error`` and AADSTS code the token endpoint answers with for an HTTP status."""
    return _DEFAULT_AAD_ERRORS.get(status, ("invalid_request", 900144))


def aad_error(
    request: web.Request,
    status: int,
    error: str,
    aadsts: int,
    description: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An error response shaped like the identity platform's."""
    rid = request.get(REQUEST_ID) or new_id()
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
    hdrs = dict(_NO_STORE)
    hdrs.update(headers or {})
    return web.json_response(body, status=status, headers=hdrs)


class AadError(Exception):
    """Raised by an identity handler; the middleware renders it with :func:`aad_error`."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def response(self, request: web.Request) -> web.Response:
        return aad_error(request, self.status, self.error, self.aadsts, self.description)


def _tenant_of(request: web.Request) -> str:
    """The path's tenant: a GUID (normalized), a well-known alias or a domain name."""
    tenant = request.match_info["tenant"]
    guid = normalize_guid(tenant)
    if guid is not None:
        return guid
    if tenant.lower() in ("common", "organizations", "consumers") or _TENANT_NAME_RE.match(tenant):
        return tenant
    raise AadError(
        400,
        "invalid_tenant",
        90002,
        f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct "
        f"tenant ID and are signing into the correct cloud.",
    )


def _resource_of(scope: str, resource: str) -> str:
    if resource and not scope:  # v1 endpoint
        return resource.rstrip("/")
    scopes = [s for s in scope.split() if s not in ("openid", "profile", "offline_access")]
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise AadError(
            400,
            "invalid_scope",
            1002012,
            f"AADSTS1002012: The provided value for scope {scope} is not valid. Client "
            f"credential flows must have a scope value with /.default suffixed to the "
            f"resource identifier (application ID URI).",
        )
    return scopes[0][: -len("/.default")].rstrip("/")


class IdentityPlatform:
    """The identity platform endpoints of one emulator instance."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._registered_certs = [
            x509.load_pem_x509_certificate(pem.encode()) for pem in state.config.client_certificates
        ]

    def routes(self) -> list[web.RouteDef]:
        return [
            # identity platform (what MSAL needs)
            web.get("/{tenant}/v2.0/.well-known/openid-configuration", self._h_openid_config),
            web.get("/{tenant}/.well-known/openid-configuration", self._h_openid_config),
            web.get("/{tenant}/discovery/instance", self._h_instance_discovery),
            web.get("/{tenant}/discovery/v2.0/keys", self._h_token_keys),
            web.get("/{tenant}/discovery/keys", self._h_token_keys),
            web.post("/{tenant}/oauth2/v2.0/token", self._h_token),
            web.post("/{tenant}/oauth2/token", self._h_token),
            # notification signing metadata (the api.aps.skype.com equivalent)
            web.get("/v1/.well-known/OpenIdConfiguration", self._h_notif_openid),
            web.get("/v1/.well-known/openidconfiguration", self._h_notif_openid),
            web.get("/v1/.well-known/keys", self._h_notif_keys),
        ]

    def _resolve_tenant(self, tenant: str) -> str:
        """The tid for a path tenant: GUIDs as-is, names map to the configured tenant."""
        return normalize_guid(tenant) or self._state.config.tenant_id

    async def _h_openid_config(self, request: web.Request) -> web.Response:
        tenant = _tenant_of(request)
        o = f"{origin(request)}/{tenant}"
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
            "userinfo_endpoint": f"{origin(request)}/oidc/userinfo",
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
        _tenant_of(request)
        return web.json_response(self._state.tokens.openid_keys())

    async def _h_token(self, request: web.Request) -> web.Response:
        config = self._state.config
        tenant = _tenant_of(request)
        tid = self._resolve_tenant(tenant)
        try:
            form = await request.post()
        except ValueError as exc:
            raise AadError(400, "invalid_request", 900144, f"Malformed body: {exc}") from exc

        def form_value(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        grant = form_value("grant_type")
        if grant != "client_credentials":
            raise AadError(
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
            try:
                user, _, pw = base64.b64decode(basic[6:]).decode().partition(":")
                client_id = client_id or unquote_plus(user)
                basic_secret = unquote_plus(pw)
            except (ValueError, UnicodeDecodeError):
                pass
        if not client_id:
            raise AadError(
                400,
                "invalid_request",
                900144,
                "AADSTS900144: The request body must contain the following parameter: 'client_id'.",
            )
        if client_id != config.client_id:
            raise AadError(
                401,
                "invalid_client",
                700016,
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
                f"directory '{tenant}'.",
            )
        secret = form_value("client_secret") or basic_secret
        assertion = form_value("client_assertion")
        if secret:
            if not hmac.compare_digest(secret.encode(), config.client_secret.encode()):
                raise AadError(
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
                raise AadError(
                    400,
                    "invalid_request",
                    50027,
                    f"AADSTS50027: client_assertion_type must be '{CLIENT_ASSERTION_TYPE}'.",
                )
            origins = self._state.own_origins(request)
            check = check_client_assertion(
                assertion,
                client_id=client_id,
                token_endpoints={f"{o}{request.path}" for o in origins},
                registered_certs=self._registered_certs,
            )
            if not check.ok:
                raise AadError(401, "invalid_client", 700027, check.reason)
            kind = "certificate"
        else:
            raise AadError(
                401,
                "invalid_client",
                7000218,
                "AADSTS7000218: The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        resource = _resource_of(form_value("scope"), form_value("resource"))
        token, lifetime = self._state.tokens.issue(
            tenant_id=tid, client_id=client_id, audience=resource, credential_kind=kind
        )
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            },
            headers=_NO_STORE,
        )

    # ------------------------------------------------------------------ notification metadata

    async def _h_notif_openid(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": NOTIFICATION_ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{origin(request)}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _h_notif_keys(self, request: web.Request) -> web.Response:
        return web.json_response(self._state.notif.jwks())
