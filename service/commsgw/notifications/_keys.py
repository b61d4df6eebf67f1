"""The signing keys of notification tokens: the JWKS an OpenID configuration names, cached.

The OpenID configuration (``https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration`` for
the global cloud) names the JWKS in its ``jwks_uri``. Keys are cached, refreshed in the
background every ``jwks_refresh_interval_s`` and refetched when a token names an unknown
``kid`` -- at most once per ``unknown_kid_min_interval_s``, so a flood of forged kids cannot
hammer the JWKS endpoint. Concurrent validations share one in-flight fetch. When the endpoint is
down, cached keys keep working; while no key could ever be loaded, every token is refused with
"signing keys unavailable".

The fetches go through the gateway's one HTTP sender (`commsgw.graph.Sender`, the Graph
client's connection pool and TLS context: COMMSGW_CA_FILE applies to them as to Graph).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import jwt
import msgspec

from commsgw._errors import NotificationAuthError
from commsgw.graph import Sender, SendFailed, SendTimeout

__all__ = ["ALGORITHM", "SigningKeyCache", "short_repr"]

ALGORITHM: Final = "RS256"
"""The only token (and key) algorithm accepted."""


class _KeysUnavailable(Exception):
    """Fetching the OpenID configuration or the JWKS failed (message is safe to show)."""


class SigningKeyCache:
    """The signing keys of one OpenID configuration, cached (see the module doc).

    The base of :class:`~commsgw.notifications._jwt.NotificationTokenValidator`, which takes
    the arguments and documents them.
    """

    def __init__(
        self,
        *,
        openid_config_url: str,
        sender: Sender,
        timeout_s: float,
        jwks_refresh_interval_s: float,
        unknown_kid_min_interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._config_url = openid_config_url
        self._sender = sender
        self._timeout = float(timeout_s)
        self._refresh_interval = float(jwks_refresh_interval_s)
        self._miss_interval = float(unknown_kid_min_interval_s)
        self._clock = clock

        self._keys: dict[str, Any] = {}  # kid -> public key object
        self._keys_by_x5t: dict[str, Any] = {}
        self._jwks_uri: str | None = None
        self._loaded_at: float | None = None  # last successful fetch
        self._last_refresh_attempt: float | None = None  # last periodic (background) attempt
        self._last_miss_fetch: float | None = None  # last fetch caused by an unknown kid
        self._last_error: str = ""
        self._inflight: asyncio.Task[bool] | None = None

    @property
    def keys_loaded(self) -> bool:
        """Whether at least one signing key is cached."""
        return bool(self._keys or self._keys_by_x5t)

    @property
    def last_error(self) -> str:
        """Why the last key fetch failed ("" when it succeeded)."""
        return self._last_error

    async def warm(self) -> None:
        """Fetch the OpenID configuration and the JWKS now (start-up, health checks).

        Joins a fetch already in flight; not rate-limited (callers decide how often).

        Raises:
            NotificationAuthError: the keys could not be fetched (cached keys are kept).
        """
        if not await self._fetch_shared():
            raise NotificationAuthError(f"signing keys unavailable: {self._last_error}")

    def _lookup(self, kid: str | None, x5t: str | None) -> Any:
        """The cached key named by kid, else by x5t (the signature still has to verify)."""
        key = self._keys.get(kid) if kid is not None else None
        if key is None and x5t is not None:
            key = self._keys_by_x5t.get(x5t)
        return key

    def _maybe_refresh(self) -> None:
        now = self._clock()
        if self.keys_loaded and self._is_stale(now):
            self._start_background_refresh(now)

    async def _key_for(self, kid: str | None, x5t: str | None) -> Any:
        self._maybe_refresh()

        key = self._lookup(kid, x5t)
        if key is not None:
            return key

        # A miss: wait for a fetch already running, else start one if the rate limit allows.
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            key = self._lookup(kid, x5t)
            if key is not None:
                return key
        now = self._clock()
        if self._last_miss_fetch is None or now - self._last_miss_fetch >= self._miss_interval:
            self._last_miss_fetch = now
            await self._fetch_shared()
            key = self._lookup(kid, x5t)
            if key is not None:
                return key
        if not self.keys_loaded:
            reason = f": {self._last_error}" if self._last_error else ""
            raise NotificationAuthError(f"signing keys unavailable{reason}")
        raise NotificationAuthError(f"unknown signing key {short_repr(kid or x5t)}")

    def _is_stale(self, now: float) -> bool:
        return self._loaded_at is None or now - self._loaded_at >= self._refresh_interval

    def _start_background_refresh(self, now: float) -> None:
        if self._inflight is not None:
            return
        if (
            self._last_refresh_attempt is not None
            and now - self._last_refresh_attempt < self._miss_interval
        ):
            return
        self._last_refresh_attempt = now
        self._inflight = asyncio.get_running_loop().create_task(self._run_fetch())

    async def _fetch_shared(self) -> bool:
        """Join the in-flight fetch or start one; True when it succeeded."""
        task = self._inflight
        if task is None:
            task = asyncio.get_running_loop().create_task(self._run_fetch())
            self._inflight = task
        return await asyncio.shield(task)

    async def _run_fetch(self) -> bool:
        try:
            keys, by_x5t = await self._fetch_keys()
        except _KeysUnavailable as e:
            self._last_error = str(e)
            return False
        except Exception as e:  # never let a fetch failure escape as another type
            self._last_error = f"unexpected error ({type(e).__name__})"
            return False
        finally:
            self._inflight = None
        self._keys = keys
        self._keys_by_x5t = by_x5t
        self._loaded_at = self._clock()
        self._last_error = ""
        return True

    async def _get_json(self, url: str, what: str) -> Any:
        try:
            response = await self._sender.send(
                "GET", url, b"", {"Accept": "application/json"}, self._timeout
            )
        except SendTimeout:
            raise _KeysUnavailable(f"fetching the {what} timed out ({self._timeout:g} s)") from None
        except SendFailed as e:
            raise _KeysUnavailable(f"fetching the {what} failed ({e.kind})") from None
        if response.status != 200:
            raise _KeysUnavailable(f"fetching the {what} answered HTTP {response.status}")
        try:
            return msgspec.json.decode(response.content)
        except (msgspec.MsgspecError, ValueError, RecursionError):
            raise _KeysUnavailable(f"the {what} is not valid JSON") from None

    async def _fetch_keys(self) -> tuple[dict[str, Any], dict[str, Any]]:
        jwks_uri = self._jwks_uri
        try:
            config = await self._get_json(self._config_url, "OpenID configuration")
            uri = config.get("jwks_uri") if isinstance(config, dict) else None
            if not isinstance(uri, str) or not uri:
                raise _KeysUnavailable("the OpenID configuration has no jwks_uri")
            jwks_uri = uri
        except _KeysUnavailable:
            if jwks_uri is None:
                raise
            # The configuration is down but the JWKS location is known: go on with it.
        self._jwks_uri = jwks_uri
        jwks = await self._get_json(jwks_uri, "JWKS")
        entries = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(entries, list):
            raise _KeysUnavailable("the JWKS has no keys array")
        keys: dict[str, Any] = {}
        by_x5t: dict[str, Any] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA":
                continue
            if entry.get("use", "sig") != "sig":
                continue
            alg = entry.get("alg")
            if alg is not None and alg != ALGORITHM:
                continue
            kid = entry.get("kid")
            x5t = entry.get("x5t")
            if not isinstance(kid, str) or not kid:
                kid = None
            if not isinstance(x5t, str) or not x5t:
                x5t = None
            if kid is None and x5t is None:
                continue
            try:
                key = jwt.PyJWK(entry, algorithm=ALGORITHM).key
            except Exception:  # any malformed key is skipped, whatever PyJWT raises
                continue
            if kid is not None:
                keys[kid] = key
            if x5t is not None:
                by_x5t[x5t] = key
        if not keys and not by_x5t:
            raise _KeysUnavailable("the JWKS has no usable RSA signing key")
        return keys, by_x5t


def short_repr(value: Any, limit: int = 80) -> str:
    """A claim/header value for an error message: repr, truncated."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
