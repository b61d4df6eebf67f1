"""App tokens for Graph from MSAL, cached, acquired off the event loop, one refresh at a time.

MSAL is synchronous, so every MSAL call runs in a worker thread. Its HTTP requests (the token
endpoint, instance discovery) go through the gateway's own `Sender` on the event loop
(`_LoopHttpClient`): one HTTP stack and one TLS context for Graph, the signing keys and the
authority. Tokens are cached here per tenant until shortly before they expire, so the hot path
never leaves the event loop; MSAL's own in-memory cache is the second level.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import pathlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from commsgw._config import CLOUDS
from commsgw._errors import ConfigError, TokenError
from commsgw._tracing import SpanKind, Tracing
from commsgw.graph._transport import Sender, SendTimeout

log = logging.getLogger("commsgw.auth")

KNOWN_AUTHORITIES = frozenset(c.authority_host for c in CLOUDS.values())

# Refresh this long before expiry so that a token never expires in flight.
EXPIRY_MARGIN_S = 300.0


class _HttpError(Exception):
    """An HTTP answer of status 400 or more, raised where MSAL asks for it."""


@dataclass(frozen=True, slots=True)
class _Response:
    """MSAL's response shape (msal.oauth2cli.http.Response)."""

    status_code: int
    text: str
    headers: Mapping[str, str]

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise _HttpError(f"HTTP {self.status_code}")


class _LoopHttpClient:
    """MSAL's HTTP client (msal.oauth2cli.http.HttpClient): each request is sent by the
    gateway's `Sender` on the event loop `loop`, while MSAL's thread waits for the answer.

    Called from MSAL's worker thread only (never on the loop, which would deadlock); a request
    that has no answer within its timeout (MSAL's, else the configured one) raises
    `SendTimeout`, and `SendFailed` for a request that failed: MSAL passes both on, and
    `TokenProvider.token` turns them into a TokenError."""

    def __init__(self, sender: Sender, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._sender = sender
        self._loop = loop
        self._timeout_s = timeout_s

    def _send(
        self, method: str, url: str, params: Any, data: Any, headers: Any, timeout: Any
    ) -> _Response:
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        hdrs = {str(k): str(v) for k, v in (headers or {}).items()}
        if isinstance(data, dict):
            body = urlencode(data).encode()
            if not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif isinstance(data, str):
            body = data.encode()
        else:
            body = data or b""
        timeout_s = float(timeout) if isinstance(timeout, int | float) else self._timeout_s
        future = asyncio.run_coroutine_threadsafe(
            self._sender.send(method, url, body, hdrs, timeout_s), self._loop
        )
        try:
            # The sender's own timeout ends the request; this one only bounds a loop that
            # stopped running (a gateway stopping) so that MSAL's thread is never left behind.
            reply = future.result(timeout_s + 5.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise SendTimeout(f"no answer from {urlsplit(url).netloc} in {timeout_s:g} s") from None
        return _Response(reply.status, reply.content.decode("utf-8", "replace"), reply.headers)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kw: Any
    ) -> _Response:
        return self._send("POST", url, params, data, headers, kw.get("timeout"))

    def get(self, url: str, params: Any = None, headers: Any = None, **kw: Any) -> _Response:
        return self._send("GET", url, params, None, headers, kw.get("timeout"))

    def close(self) -> None:
        """Nothing to close: the sender belongs to the gateway."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float  # time.monotonic() based


def load_certificate_credential(path: pathlib.Path, password: str) -> dict[str, str]:
    """MSAL's certificate credential from a PEM holding the private key and the certificate."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"AZURE_CLIENT_CERTIFICATE_PATH={path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(pem, password.encode() or None)
        cert = x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"AZURE_CLIENT_CERTIFICATE_PATH={path}: needs a PEM private key and certificate ({exc})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(
            f"AZURE_CLIENT_CERTIFICATE_PATH={path}: the key is {type(key).__name__}; app "
            "certificates for Microsoft Entra ID must have an RSA key"
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "private_key": key_pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """The app's identity and where its tokens come from."""

    # The default tenant (GUID) and the app (client) id.
    tenant_id: str
    client_id: str
    # The token authority (e.g. https://login.microsoftonline.com) and the scope asked for.
    authority_host: str
    scope: str
    # The credential: a secret, or a PEM with the certificate and its private key.
    client_secret: str = field(default="", repr=False)
    certificate_path: pathlib.Path | None = None
    certificate_password: str = field(default="", repr=False)
    # The longest request to the authority (the sender's TLS context says whom it trusts).
    timeout_s: float = 10.0


class TokenProvider:
    """App-only tokens for the configured app, per tenant."""

    def __init__(
        self,
        config: TokenConfig,
        *,
        sender: Sender,
        clock: Callable[[], float] = time.monotonic,
        on_refresh: Callable[[str, bool], None] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._config = config
        self._sender = sender
        self._tracing = tracing or Tracing()
        self._clock = clock
        self._on_refresh = on_refresh
        self._credential: str | dict[str, str]
        if config.certificate_path is not None:
            self._credential = load_certificate_credential(
                config.certificate_path, config.certificate_password
            )
        else:
            self._credential = config.client_secret
        self._apps: dict[str, Any] = {}
        # MSAL's HTTP client, bound to the loop of the first `token()` call (the sender's).
        self._http: _LoopHttpClient | None = None
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.healthy: bool | None = None  # None until the first acquisition

    def _app(self, tenant: str) -> Any:
        app = self._apps.get(tenant)
        if app is None:
            s = self._config
            app = msal.ConfidentialClientApplication(
                s.client_id,
                client_credential=self._credential,
                authority=f"{s.authority_host}/{tenant}",
                http_client=self._http,
                timeout=s.timeout_s,
                # Instance discovery asks Microsoft's global host about the authority: right
                # for the national clouds' hosts, impossible for another one (the emulator).
                instance_discovery=s.authority_host in KNOWN_AUTHORITIES,
            )
            self._apps[tenant] = app
        return app

    def _acquire_blocking(self, tenant: str, force: bool) -> dict[str, Any]:
        app = self._app(tenant)
        if force:
            app.remove_tokens_for_client()
        result: dict[str, Any] = app.acquire_token_for_client(scopes=[self._config.scope])
        return result

    async def token(self, tenant: str, *, stale: str | None = None) -> str:
        """A valid token for `tenant`.

        `stale` is a token Graph just refused (401): it is replaced by a fresh one, unless a
        concurrent refresh already replaced it.
        """
        cached = self._tokens.get(tenant)
        now = self._clock()
        if cached is not None and cached.value != stale and cached.expires_at - now > 0:
            return cached.value
        lock = self._locks.setdefault(tenant, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(tenant)
            now = self._clock()
            if cached is not None and cached.value != stale and cached.expires_at - now > 0:
                return cached.value
            force = stale is not None
            if self._http is None:
                self._http = _LoopHttpClient(
                    self._sender, asyncio.get_running_loop(), self._config.timeout_s
                )
            try:
                if self._tracing.enabled:
                    with self._tracing.tracer.start_as_current_span(
                        "token acquisition",
                        kind=SpanKind.CLIENT,
                        attributes={"commsgw.tenant_id": tenant, "commsgw.token.forced": force},
                    ):
                        result = await asyncio.to_thread(self._acquire_blocking, tenant, force)
                else:
                    result = await asyncio.to_thread(self._acquire_blocking, tenant, force)
            except Exception as exc:  # MSAL and HTTP failures: network, TLS, bad authority
                self.healthy = False
                log.warning("token acquisition failed for tenant %s: %s", tenant, type(exc))
                raise TokenError(
                    f"could not reach the token authority: {type(exc).__name__}: {exc}"
                ) from exc
            if "access_token" not in result:
                self.healthy = False
                err = str(result.get("error", "unknown_error"))
                desc = str(result.get("error_description", "")).splitlines()[0:1]
                error = TokenError(f"token authority refused the app: {err}: {' '.join(desc)}")
                error.metadata["authority_error"] = err[:64]
                raise error
            lifetime = float(result.get("expires_in", 3600))
            value = str(result["access_token"])
            self._tokens[tenant] = AccessToken(
                value, now + max(lifetime - EXPIRY_MARGIN_S, lifetime / 2)
            )
            self.healthy = True
            if self._on_refresh is not None:
                self._on_refresh(tenant, force)
            return value

    def close(self) -> None:
        """Forget the MSAL applications (their token caches); the sender is the caller's."""
        self._apps.clear()

    async def warm(self) -> None:
        """Acquire the default tenant's token (readiness check at start-up)."""
        await self.token(self._config.tenant_id)
