"""TLS material for the emulator: a private CA and a loopback server certificate signed by it.

The CA certificate (``emulator-ca.pem``) is what clients trust: Python's ``ssl`` (httpx) and
``requests`` (MSAL, via ``verify=<path>``) both accept the chain because the CA carries
``basicConstraints CA:TRUE`` plus ``keyCertSign`` and the leaf carries SANs for 127.0.0.1, ::1,
localhost, ``serverAuth`` and Subject/Authority Key Identifiers (required by strict verifiers).

The CA (key included, mode 0600) is reused across restarts when found in the state directory so a
client configured once with the CA path keeps working; the leaf is re-issued at every start.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import pathlib
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from commsgw._config import EMULATOR_CA_FILE

_log = logging.getLogger("commsgw.emulator")

CA_FILE = EMULATOR_CA_FILE  # where the gateway looks for it in emulator mode
CA_KEY_FILE = "emulator-ca-key.pem"
SERVER_CERT_FILE = "emulator-server.pem"
SERVER_KEY_FILE = "emulator-server-key.pem"

_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "*"}


@dataclass(frozen=True)
class TlsMaterial:
    ca_path: pathlib.Path
    server_cert_path: pathlib.Path
    server_key_path: pathlib.Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.server_cert_path), str(self.server_key_path))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """An SSL context trusting only the emulator CA (handy for httpx / PyJWKClient)."""
        return ssl.create_default_context(cafile=str(self.ca_path))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def certificate_builder(
    subject: x509.Name, issuer: x509.Name, public_key: CertificatePublicKeyTypes, *, days: int
) -> x509.CertificateBuilder:
    """A certificate of `public_key` valid from five minutes ago for `days`: where every
    certificate the emulator makes starts (its CA, its server's leaf, its signing keys')."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _write(path: pathlib.Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(tmp, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ca(
    state_dir: pathlib.Path,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None:
    cert_path, key_path = state_dir / CA_FILE, state_dir / CA_KEY_FILE
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        _log.warning("ignoring unreadable emulator CA in %s: %s", state_dir, exc)
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.not_valid_after_utc < _now() + dt.timedelta(days=1):
        return None
    pub = cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.public_numbers() != (
        key.public_key().public_numbers()
    ):
        return None
    return key, cert


def _make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "commsgw emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "commsgw Graph emulator local CA"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        certificate_builder(name, name, key.public_key(), days=825)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _san_entries(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    if host not in _WILDCARD_HOSTS and host not in ("localhost", "127.0.0.1", "::1"):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, host: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        certificate_builder(subject, ca_cert.subject, key.public_key(), days=397)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_san_entries(host)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def ensure_tls_material(state_dir: pathlib.Path, host: str) -> TlsMaterial:
    """Create (or reuse) the CA and issue a fresh server certificate; write the PEM files."""
    state_dir.mkdir(parents=True, exist_ok=True)
    loaded = _load_ca(state_dir)
    if loaded is None:
        ca_key, ca_cert = _make_ca()
        _write(state_dir / CA_KEY_FILE, _key_pem(ca_key), private=True)
        _write(state_dir / CA_FILE, ca_cert.public_bytes(serialization.Encoding.PEM))
    else:
        ca_key, ca_cert = loaded
    srv_key, srv_cert = _make_server_cert(ca_key, ca_cert, host)
    _write(state_dir / SERVER_KEY_FILE, _key_pem(srv_key), private=True)
    # The chain file holds leaf then CA so clients that only trust the CA can build the path.
    chain = srv_cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    _write(state_dir / SERVER_CERT_FILE, chain)
    return TlsMaterial(
        ca_path=state_dir / CA_FILE,
        server_cert_path=state_dir / SERVER_CERT_FILE,
        server_key_path=state_dir / SERVER_KEY_FILE,
    )
