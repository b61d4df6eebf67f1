"""Signing keys and JWTs: app access tokens, client assertions, notification tokens."""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

NOTIFICATION_ISSUER = "https://api.botframework.com"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class SigningKey:
    """An RSA key with a self-signed certificate (so JWKS entries can carry x5t / x5c)."""

    kid: str
    private_key: rsa.RSAPrivateKey
    cert_der: bytes

    @classmethod
    def generate(cls, common_name: str) -> SigningKey:
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID

        from commsgw.emulator._certs import certificate_builder

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = certificate_builder(name, name, key.public_key(), days=365).sign(
            key, hashes.SHA256()
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        # Like AAD / the Skype token service: the kid is the base64url SHA-1 thumbprint.
        kid = _b64url(hashlib.sha1(der).digest())
        return cls(kid=kid, private_key=key, cert_der=der)

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = dict(RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True))
        jwk.update(
            {
                "kty": "RSA",
                "use": "sig",
                "kid": self.kid,
                "x5t": self.kid,
                "x5c": [base64.b64encode(self.cert_der).decode("ascii")],
            }
        )
        return jwk


@functools.cache
def _initial_key(purpose: str) -> SigningKey:
    """The first key of each purpose is shared by all emulators of a process.

    RSA generation dominates start-up time and tests start many emulators. Sharing is harmless:
    an access token is only valid at the instance that issued it (its id is remembered there),
    and rotated notification keys are always fresh.
    """
    return SigningKey.generate(f"commsgw emulator {purpose} signing")


class AccessTokenIssuer:
    """Issues and validates the emulator's app-only access tokens (RS256)."""

    def __init__(self, lifetime_s: int, roles: tuple[str, ...]) -> None:
        self.lifetime_s = lifetime_s
        self.roles = roles
        self.key = _initial_key("token")
        self._lock = threading.Lock()
        self._valid_jtis: set[str] = set()

    def issue(
        self, *, tenant_id: str, client_id: str, audience: str, credential_kind: str
    ) -> tuple[str, int]:
        now = int(time.time())
        jti = _b64url(secrets.token_bytes(16))
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_s,
            "appid": client_id,
            "azp": client_id,
            "appidacr": "2" if credential_kind == "certificate" else "1",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{client_id}")),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{client_id}")),
            "roles": list(self.roles),
            "tid": tenant_id,
            "uti": jti,
            "ver": "1.0",
        }
        token = jwt.encode(
            claims,
            self.key.private_key,
            algorithm="RS256",
            headers={"kid": self.key.kid, "x5t": self.key.kid, "typ": "JWT"},
        )
        with self._lock:
            self._valid_jtis.add(jti)
        return token, self.lifetime_s

    def revoke_all(self) -> None:
        with self._lock:
            self._valid_jtis.clear()

    def validate(self, token: str, audiences: set[str]) -> tuple[dict[str, Any] | None, str]:
        """Return (claims, "") for a good token, else (None, reason)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key.private_key.public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "nbf", "tid", "aud", "uti"]},
            )
        except jwt.ExpiredSignatureError:
            return None, "Lifetime validation failed, the token is expired."
        except jwt.ImmatureSignatureError:
            return None, "Lifetime validation failed, the token is not yet valid."
        except jwt.PyJWTError:
            return None, "Invalid signature."
        aud = str(claims.get("aud", "")).rstrip("/")
        if aud not in audiences:
            return None, "Invalid audience."
        with self._lock:
            known = claims["uti"] in self._valid_jtis
        if not known:
            return None, "The token has been revoked."
        return claims, ""

    def openid_keys(self) -> dict[str, Any]:
        return {"keys": [self.key.jwk()]}


class NotificationSigner:
    """Signs the callback notification tokens; serves the JWKS the bot validates them with."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = _initial_key("notification")
        self._published: list[SigningKey] = [self.current]
        self._rogue: SigningKey | None = None

    def rotate(self, *, keep_old: bool = True) -> str:
        new = SigningKey.generate("commsgw emulator notification signing")
        with self._lock:
            self._published = [new, *self._published] if keep_old else [new]
            self.current = new
        return new.kid

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            keys = list(self._published)
        out = []
        for k in keys:
            jwk = k.jwk()
            jwk["endorsements"] = ["msteams", "skype"]
            out.append(jwk)
        return {"keys": out}

    def _rogue_key(self) -> SigningKey:
        with self._lock:
            if self._rogue is None:
                self._rogue = SigningKey.generate("rogue")
            return self._rogue

    def mint(
        self,
        *,
        tenant_id: str,
        audience: str,
        expires_in: int = 300,
        kid: str | None = None,
        extra_headers: Mapping[str, Any] | None = None,
        rogue_key: bool = False,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        with self._lock:
            key = self.current
        signer = self._rogue_key() if rogue_key else key
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": NOTIFICATION_ISSUER,
            "aud": audience,
            "tid": tenant_id,
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "serviceurl": "https://api.aps.skype.com/",
        }
        payload.update(claims or {})
        headers: dict[str, Any] = {"kid": kid or key.kid, "typ": "JWT", "cty": "JWT"}
        headers.update(extra_headers or {})
        return jwt.encode(payload, signer.private_key, algorithm="RS256", headers=headers)


@dataclass
class AssertionCheck:
    ok: bool
    reason: str = ""
    claims: dict[str, Any] = field(default_factory=dict)


def _thumbprints(cert: x509.Certificate) -> set[str]:
    der = cert.public_bytes(serialization.Encoding.DER)
    return {_b64url(hashlib.sha1(der).digest()), _b64url(hashlib.sha256(der).digest())}


def check_client_assertion(
    assertion: str,
    *,
    client_id: str,
    token_endpoints: set[str],
    registered_certs: list[x509.Certificate],
) -> AssertionCheck:
    """Validate a certificate credential (RFC 7523 client assertion) the way the emulator can.

    Always checked: it is a JWT with alg RS256/PS256 and an ``x5t`` or ``x5t#S256`` header,
    ``iss`` == ``sub`` == client_id, ``aud`` is this token endpoint, ``exp`` in the future.
    The signature is verified against a registered certificate whose thumbprint matches the
    header when certificates are registered (EmulatorConfig.client_certificates); else against
    the ``x5c`` header certificate when present (it must match the thumbprint); else not at all.
    """
    try:
        header = jwt.get_unverified_header(assertion)
        claims: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        return AssertionCheck(False, f"AADSTS50027: Invalid JWT token. {exc}")
    alg = header.get("alg")
    if alg not in ("RS256", "PS256"):
        return AssertionCheck(False, f"AADSTS5002738: Invalid JWT token. Unsupported alg {alg!r}.")
    thumb = header.get("x5t#S256") or header.get("x5t")
    if not isinstance(thumb, str) or not thumb:
        return AssertionCheck(
            False, "AADSTS700027: Client assertion contains an invalid signature (no x5t)."
        )
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        return AssertionCheck(
            False, "AADSTS700023: Client assertion iss/sub must be the application id."
        )
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a in token_endpoints for a in auds):
        return AssertionCheck(
            False,
            f"AADSTS700212: No matching federated identity record found for presented assertion "
            f"audience {aud!r}.",
        )
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp < time.time() - 60:
        return AssertionCheck(False, "AADSTS700024: Client assertion is not within its valid time.")

    thumb = thumb.rstrip("=")  # MSAL sends padded base64url
    verify_with: x509.Certificate | None = None
    if registered_certs:
        for cert in registered_certs:
            if thumb in _thumbprints(cert):
                verify_with = cert
                break
        if verify_with is None:
            return AssertionCheck(
                False,
                f"AADSTS700027: The certificate with identifier used to sign the client "
                f"assertion is not registered on application. [Reason - The key was not "
                f"found., Thumbprint of key used by client: '{thumb}']",
            )
    elif isinstance(header.get("x5c"), list) and header["x5c"]:
        try:
            first = header["x5c"][0]
            verify_with = x509.load_der_x509_certificate(base64.b64decode(first))
        except (ValueError, TypeError):
            return AssertionCheck(False, "AADSTS700027: Invalid x5c header.")
        if thumb not in _thumbprints(verify_with):
            return AssertionCheck(False, "AADSTS700027: x5t does not match the x5c certificate.")
    if verify_with is not None:
        try:
            jwt.decode(
                assertion,
                verify_with.public_key(),  # type: ignore[arg-type]
                algorithms=[alg],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            return AssertionCheck(
                False, "AADSTS700027: Client assertion contains an invalid signature."
            )
    return AssertionCheck(True, claims=claims)
