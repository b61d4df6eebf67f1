"""Who may call: identities from a callers file, authenticated by bearer token or client
certificate, each with permissions and optionally the tenants it may touch.

The callers file (JSON) stores only SHA-256 digests of tokens (`commsgw hash-token` makes one):

    {"callers": [
      {"name": "ivr-service", "token_sha256": "9f86d0...",
       "permissions": ["calls.answer", "calls.media", "calls.control", "operations.watch"]},
      {"name": "recorder", "cert_names": ["recorder.internal"],
       "permissions": ["operations.watch", "recordings.read"],
       "tenants": ["00000000-0000-0000-0000-0000000000aa"]}
    ]}

The permissions, one per family of RPCs, are in `commsgw._permissions`. Without a callers
file every caller is trusted with every permission (development on
loopback); binding a non-loopback address that way needs an explicit setting.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from commsgw import _permissions
from commsgw._errors import ConfigError, PermissionDenied, Unauthenticated
from commsgw._ids import normalize_guid

PERMISSIONS = _permissions.ALL


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    permissions: frozenset[str]
    tenants: frozenset[str] = frozenset()  # empty: any tenant

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise PermissionDenied(f"caller {self.name!r} lacks the permission {permission}")

    def require_tenant(self, tenant: str) -> None:
        if self.tenants and tenant not in self.tenants:
            raise PermissionDenied(
                f"caller {self.name!r} may not act on tenant {tenant}",
                reason="TENANT_NOT_PERMITTED",
            )

    def visible_tenants(self, asked: frozenset[str]) -> frozenset[str]:
        """The tenant filter a watch gets: what was asked, within what the caller may see."""
        if not self.tenants:
            return asked
        if not asked:
            return self.tenants
        outside = asked - self.tenants
        if outside:
            raise PermissionDenied(
                f"caller {self.name!r} may not watch tenant {sorted(outside)[0]}",
                reason="TENANT_NOT_PERMITTED",
            )
        return asked

    @property
    def reads_recordings(self) -> bool:
        return _permissions.RECORDINGS in self.permissions


TRUSTED = Identity("local", PERMISSIONS)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Callers:
    """The identities a gateway accepts."""

    def __init__(self, identities: Sequence[tuple[Identity, Iterable[str], Iterable[str]]]):
        self._by_token: dict[str, Identity] = {}
        self._by_cert: dict[str, Identity] = {}
        for identity, token_hashes, cert_names in identities:
            for h in token_hashes:
                self._by_token[h] = identity
            for n in cert_names:
                self._by_cert[n] = identity

    @classmethod
    def load(cls, path: pathlib.Path) -> Callers:
        env = "COMMSGW_CALLERS_FILE"
        try:
            doc = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{env}={path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{env}={path}: not JSON ({exc})") from None
        callers = doc.get("callers") if isinstance(doc, dict) else None
        if not isinstance(callers, list):
            raise ConfigError(f'{env}={path}: needs {{"callers": [...]}}')
        out: list[tuple[Identity, list[str], list[str]]] = []
        names: set[str] = set()
        for i, c in enumerate(callers):
            where = f"{env}={path}: callers[{i}]"
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
                raise ConfigError(f"{where} needs a name")
            if c["name"] in names:
                raise ConfigError(f"{where}: duplicate name {c['name']!r}")
            names.add(c["name"])
            perms = _strings(c.get("permissions", []), f"{where}.permissions")
            unknown = set(perms) - PERMISSIONS
            if unknown:
                raise ConfigError(
                    f"{where}: unknown permission {sorted(unknown)[0]!r}; use "
                    f"{', '.join(sorted(PERMISSIONS))}"
                )
            tenants: set[str] = set()
            for t in _strings(c.get("tenants", []), f"{where}.tenants"):
                g = normalize_guid(t)
                if g is None:
                    raise ConfigError(f"{where}: tenant {t!r} is not a GUID")
                tenants.add(g)
            hashes = _strings(
                c.get("token_sha256", []) if isinstance(c.get("token_sha256"), list)
                else [c["token_sha256"]] if "token_sha256" in c else [],
                f"{where}.token_sha256",
            )  # fmt: skip
            for h in hashes:
                if len(h) != 64 or any(ch not in "0123456789abcdef" for ch in h):
                    raise ConfigError(f"{where}: token_sha256 must be 64 lower-case hex digits")
            certs = _strings(c.get("cert_names", []), f"{where}.cert_names")
            if not hashes and not certs:
                raise ConfigError(f"{where}: needs token_sha256 or cert_names")
            out.append((Identity(c["name"], frozenset(perms), frozenset(tenants)), hashes, certs))
        return cls(out)

    def authenticate(
        self, metadata: Mapping[str, str], auth_context: Mapping[str, Iterable[bytes]]
    ) -> Identity:
        auth = metadata.get("authorization")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
            # Only digests are kept; looking one up reveals nothing about a token's prefix.
            by_token = self._by_token.get(hash_token(token.strip()))
            if by_token is None:
                raise Unauthenticated("unknown bearer token")
            return by_token
        for key in ("x509_subject_alternative_name", "x509_common_name"):
            for raw in auth_context.get(key, ()):
                by_cert = self._by_cert.get(raw.decode(errors="replace"))
                if by_cert is not None:
                    return by_cert
        if auth_context.get("x509_common_name") or auth_context.get(
            "x509_subject_alternative_name"
        ):
            raise Unauthenticated("the client certificate names no known caller")
        raise Unauthenticated("no credentials: send 'authorization: Bearer <token>' metadata")


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return list(value)
