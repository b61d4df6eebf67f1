"""Validate the bearer token Microsoft puts on every notification POST.

Graph signs each callback with an RS256 JWT, with a key of the JWKS its OpenID configuration
names (fetched and cached by :class:`~commsgw.notifications._keys.SigningKeyCache`, the base of
the validator). A token that passed once is remembered (bounded cache) so that its
signature is not verified again; its exp/nbf and the presence of its key are still checked on
every use.

Every failure is a :class:`~commsgw._errors.NotificationAuthError` (HTTP 401) whose message
says why; the token itself never appears in a message.
"""

from __future__ import annotations

import binascii
import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeGuard

import jwt
import msgspec
from jwt.api_jws import _BASE64URL_ALPHABET
from jwt.utils import base64url_decode, base64url_encode

from commsgw._errors import NotificationAuthError
from commsgw.graph import Sender
from commsgw.notifications._keys import ALGORITHM, SigningKeyCache, short_repr

__all__ = [
    "DEFAULT_ISSUERS",
    "LEEWAY_S",
    "InsecureNoValidation",
    "NotificationClaims",
    "NotificationTokenValidator",
    "NotificationValidator",
]

LEEWAY_S: Final = 60.0
"""Clock skew allowed on a callback token's exp, nbf and iat (seconds)."""

DEFAULT_ISSUERS: Final[tuple[str, ...]] = (
    "https://api.botframework.com",
    "https://api.botframework.com/",
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
)

_MAX_TOKEN_LENGTH: Final = 16 * 1024
_VERIFIED_CACHE_SIZE: Final = 1024


@dataclass(frozen=True, slots=True)
class NotificationClaims:
    """What a validated notification token says.

    Attributes:
        tenant_id: the ``tid`` claim, stripped and lower-cased.
        issuer: the ``iss`` claim.
        audience: the ``aud`` claim.
        claims: every claim of the token (read-only).
    """

    tenant_id: str
    issuer: str
    audience: str
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


class NotificationValidator(Protocol):
    """What the webhook needs from a validator (real or :class:`InsecureNoValidation`)."""

    async def validate(self, authorization_header: str | None) -> NotificationClaims: ...

    async def warm(self) -> None: ...

    @property
    def keys_loaded(self) -> bool: ...


def _bearer_token(authorization_header: str | None) -> str:
    if authorization_header is None or not authorization_header.strip():
        raise NotificationAuthError("missing Authorization header")
    parts = authorization_header.split(None, 1)
    if parts[0].lower() != "bearer":
        raise NotificationAuthError("Authorization header is not a Bearer token")
    token = parts[1].strip() if len(parts) == 2 else ""
    if not token:
        raise NotificationAuthError("empty Bearer token")
    if len(token) > _MAX_TOKEN_LENGTH:
        raise NotificationAuthError("Bearer token too long")
    return token


# base64url's alphabet onto base64's, for binascii's strict decoder.
_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")
_HEADER_DECODER: Final = msgspec.json.Decoder()


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of `token`, read to choose the key, before PyJWT verifies the whole token
    (header included) with it. Not `jwt.get_unverified_header`: that decodes and checks every
    segment, the signature's byte by byte in Python (27 µs a token here), which `jwt.decode`
    then does again; only the header is needed to pick the key."""
    segment = token.split(".", 1)[0] if token.count(".") == 2 else ""
    try:
        raw = segment.encode("ascii").translate(_URLSAFE)
        header = _HEADER_DECODER.decode(
            binascii.a2b_base64(raw + b"=" * (-len(raw) % 4), strict_mode=True)
        )
    except (ValueError, binascii.Error, msgspec.DecodeError):
        header = None
    if not isinstance(header, dict):
        raise NotificationAuthError(
            "malformed token: its header is not a base64url-encoded JSON object"
        )
    return header


class _Jws(jwt.PyJWS):
    """PyJWT's JWS with its segment check done by bytes methods instead of a Python loop.

    PyJWT 2.15 (the GHSA-hxm8-2xgr-2p9m fix) tests each byte of each segment against the
    base64url alphabet in a generator: about 1,100 iterations, 60 µs a Graph token, more than
    twice its RSA verification. This is the same rule (at most two trailing "=", and those only
    on a whole quantum; no other byte outside the alphabet; no length of 1 mod 4; the canonical
    encoding; PyJWT's own alphabet), with the same error; `tests/notifications/test_jwt.py`
    checks that the two agree on every input."""

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        stripped = segment.rstrip(b"=")
        padding = len(segment) - len(stripped)
        if (
            padding > 2
            or (padding and len(segment) % 4 != 0)
            or len(stripped) % 4 == 1
            or stripped.translate(None, _BASE64URL_ALPHABET)
        ):
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64url_decode(stripped)
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err
        if base64url_encode(decoded) != stripped:
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


class _Jwt(jwt.PyJWT):
    """`jwt.PyJWT` (claims, audience, required claims) over `_Jws`."""

    def __init__(self) -> None:
        super().__init__()
        self._jws = _Jws(options=self._get_sig_options())


_DECODER: Final = _Jwt()


def _is_number(value: Any) -> TypeGuard[int | float]:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < 2**63
    return isinstance(value, float) and math.isfinite(value)


class NotificationTokenValidator(SigningKeyCache):
    """Validates ``Authorization: Bearer <JWT>`` headers of Graph notification POSTs.

    Args:
        openid_config_url: the OpenID configuration document naming ``jwks_uri``.
        audience: the bot's application (client) id; ``aud`` must equal it.
        sender: what fetches the configuration and the JWKS (the gateway's one HTTP sender,
            `commsgw.graph.Sender`: the Graph client's pool and TLS context).
        timeout_s: the time each of those fetches may take.
        issuers: accepted ``iss`` values (exact match).
        leeway_s: clock skew allowed on ``exp``/``nbf``/``iat``.
        jwks_refresh_interval_s: age after which cached keys are refreshed (in the
            background; the cached keys stay in use meanwhile and if the refresh fails).
        unknown_kid_min_interval_s: minimum time between two fetches triggered by a token
            whose key is not cached (also between retries while no key could ever be loaded).
        clock: seconds since the epoch; used for ``exp``/``nbf``/``iat`` and the key cache.
    """

    def __init__(
        self,
        *,
        openid_config_url: str,
        audience: str,
        sender: Sender,
        timeout_s: float = 10.0,
        issuers: Sequence[str] = DEFAULT_ISSUERS,
        leeway_s: float = LEEWAY_S,
        jwks_refresh_interval_s: float = 3600.0,
        unknown_kid_min_interval_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not audience:
            raise ValueError("audience must not be empty")
        super().__init__(
            openid_config_url=openid_config_url,
            sender=sender,
            timeout_s=timeout_s,
            jwks_refresh_interval_s=jwks_refresh_interval_s,
            unknown_kid_min_interval_s=unknown_kid_min_interval_s,
            clock=clock,
        )
        self._audience = audience
        self._issuers = frozenset(issuers)
        self._leeway = float(leeway_s)
        # Tokens already verified (Graph reuses a token for a while): token -> (claims, kid,
        # x5t, key). Only successful validations enter it, so forged tokens cannot fill it.
        self._verified: dict[str, tuple[NotificationClaims, str | None, str | None, Any]] = {}

    async def validate(self, authorization_header: str | None) -> NotificationClaims:
        """Validate a notification's Authorization header.

        Raises:
            NotificationAuthError: missing/malformed header, or a token that fails any check.
        """
        token = _bearer_token(authorization_header)
        cached = self._verified.get(token)
        if cached is not None:
            result, kid, x5t, key = cached
            # Still signed by a key of the current set: only the time checks can change.
            if self._lookup(kid, x5t) is key:
                try:
                    self._check_times(result.claims)
                except NotificationAuthError:
                    self._verified.pop(token, None)
                    raise
                self._maybe_refresh()
                return result
            self._verified.pop(token, None)
        header = _unverified_header(token)
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise NotificationAuthError(
                f"token algorithm {short_repr(alg)} not allowed (only {ALGORITHM})"
            )
        kid = header.get("kid")
        x5t = header.get("x5t")
        if not isinstance(kid, str) or not kid:
            kid = None
        if not isinstance(x5t, str) or not x5t:
            x5t = None
        if kid is None and x5t is None:
            raise NotificationAuthError("token header names no signing key (kid/x5t)")

        key = await self._key_for(kid, x5t)
        result = self._verify(token, key)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            # Evict the oldest entry (dicts keep insertion order).
            self._verified.pop(next(iter(self._verified)), None)
        self._verified[token] = (result, kid, x5t, key)
        return result

    # -- claims -------------------------------------------------------------------------------

    def _verify(self, token: str, key: Any) -> NotificationClaims:
        try:
            claims = _DECODER.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                options={
                    "verify_signature": True,
                    "verify_aud": True,
                    "strict_aud": True,
                    # exp/nbf/iat and iss are checked below (with the injected clock).
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_iss": False,
                    "require": ["exp", "iss", "aud"],
                },
            )
        except jwt.InvalidSignatureError:
            raise NotificationAuthError("token signature verification failed") from None
        except jwt.InvalidAlgorithmError:
            raise NotificationAuthError("token algorithm not allowed") from None
        except jwt.MissingRequiredClaimError as e:
            raise NotificationAuthError(f"token has no {short_repr(e.claim)} claim") from None
        except jwt.InvalidAudienceError:
            raise NotificationAuthError("token audience does not match") from None
        except jwt.PyJWTError as e:
            raise NotificationAuthError(f"invalid token: {_safe(e)}") from None
        except (ValueError, TypeError) as e:
            raise NotificationAuthError(f"invalid token ({type(e).__name__})") from None
        if not isinstance(claims, dict):
            raise NotificationAuthError("token payload is not an object")

        self._check_times(claims)
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss not in self._issuers:
            raise NotificationAuthError(f"token issuer {short_repr(iss)} not accepted")
        aud = claims.get("aud")
        if not isinstance(aud, str):  # strict_aud already ensures it
            raise NotificationAuthError("token audience does not match")
        tid = claims.get("tid")
        if not isinstance(tid, str) or not tid.strip():
            raise NotificationAuthError("token has no tid (tenant) claim")
        return NotificationClaims(
            tenant_id=tid.strip().lower(),
            issuer=iss,
            audience=aud,
            claims=MappingProxyType(claims),
        )

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        """exp (required), nbf and iat against the clock, with leeway."""
        now = self._clock()
        exp = claims.get("exp")
        if not _is_number(exp):
            raise NotificationAuthError("token exp claim is not a number")
        if now - self._leeway >= exp:
            raise NotificationAuthError("token expired")
        nbf = claims.get("nbf")
        if nbf is not None:
            if not _is_number(nbf):
                raise NotificationAuthError("token nbf claim is not a number")
            if nbf > now + self._leeway:
                raise NotificationAuthError("token not yet valid (nbf)")
        iat = claims.get("iat")
        if iat is not None:
            if not _is_number(iat):
                raise NotificationAuthError("token iat claim is not a number")
            if iat > now + self._leeway:
                raise NotificationAuthError("token issued in the future (iat)")


class InsecureNoValidation:
    """Accepts every notification without checking its token ("validation off").

    The tenant is the ``tid`` of the bearer token when there is one that can be read
    (unverified), else ``default_tenant_id``. Only for development and tests: anyone who can
    reach the webhook can then inject events.
    """

    def __init__(self, *, default_tenant_id: str) -> None:
        self._default_tenant = default_tenant_id.strip().lower()

    @property
    def keys_loaded(self) -> bool:
        return True

    async def warm(self) -> None:
        return None

    async def validate(self, authorization_header: str | None) -> NotificationClaims:
        claims: dict[str, Any] = {}
        with contextlib.suppress(NotificationAuthError):
            token = _bearer_token(authorization_header)
            try:
                decoded = jwt.decode(token, options={"verify_signature": False}, algorithms=None)
            except (jwt.PyJWTError, ValueError, TypeError):
                decoded = None
            if isinstance(decoded, dict):
                claims = decoded
        tid = claims.get("tid")
        tenant = tid.strip().lower() if isinstance(tid, str) and tid.strip() else ""
        iss = claims.get("iss")
        aud = claims.get("aud")
        return NotificationClaims(
            tenant_id=tenant or self._default_tenant,
            issuer=iss if isinstance(iss, str) else "",
            audience=aud if isinstance(aud, str) else "",
            claims=MappingProxyType(claims),
        )


def _safe(error: Exception) -> str:
    """PyJWT's message (it never contains the token), truncated."""
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
