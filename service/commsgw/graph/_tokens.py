"""App tokens for Graph from MSAL, cached, acquired off the event loop, one refresh at a time.

MSAL is synchronous (it uses `requests`), so every MSAL call runs in a worker thread. Tokens
are cached here per tenant until shortly before they expire, so the hot path never leaves the
event loop; MSAL's own in-memory cache is the second level.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from commsgw._config import CLOUDS
from commsgw._errors import ConfigError, TokenError
from commsgw._tracing import SpanKind, Tracing

log = logging.getLogger("commsgw.auth")

KNOWN_AUTHORITIES = frozenset(c.authority_host for c in CLOUDS.values())

# Refresh this long before expiry so that a token never expires in flight.
EXPIRY_MARGIN_S = 300.0


class _Session(requests.Session):
    """MSAL's HTTP session: every request has a timeout, and the CA it was given is used.

    requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a session's own `verify`
    (psf/requests#3829), and MSAL does not pass its timeout on every request.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        if verify is None:
            verify = self.verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


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
    # Extra CA bundle to trust for the authority; the longest request.
    ca_file: pathlib.Path | None = None
    timeout_s: float = 10.0


class TokenProvider:
    """App-only tokens for the configured app, per tenant."""

    def __init__(
        self,
        config: TokenConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_refresh: Callable[[str, bool], None] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._config = config
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
        self._sessions: list[_Session] = []
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.healthy: bool | None = None  # None until the first acquisition

    def _app(self, tenant: str) -> Any:
        app = self._apps.get(tenant)
        if app is None:
            s = self._config
            session = _Session(s.timeout_s)
            self._sessions.append(session)
            session.verify = str(s.ca_file) if s.ca_file is not None else True
            app = msal.ConfidentialClientApplication(
                s.client_id,
                client_credential=self._credential,
                authority=f"{s.authority_host}/{tenant}",
                http_client=session,
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
            except Exception as exc:  # requests/MSAL failures: network, TLS, bad authority
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
        """Close MSAL's HTTP sessions (their pooled connections to the authority)."""
        for session in self._sessions:
            session.close()
        self._sessions.clear()
        self._apps.clear()

    async def warm(self) -> None:
        """Acquire the default tenant's token (readiness check at start-up)."""
        await self.token(self._config.tenant_id)
