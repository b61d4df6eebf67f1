"""Every key and certificate the tests make, and nowhere else: a CA and the leaf certificates
it signs (TLS servers, mTLS clients, app credentials), self-signed app certificates as an app
registration holds them, and bare signing keys (for JWTs)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import pathlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Pem:
    cert: bytes
    key: bytes

    def write(self, folder: pathlib.Path, name: str) -> tuple[pathlib.Path, pathlib.Path]:
        folder.mkdir(parents=True, exist_ok=True)
        c, k = folder / f"{name}.crt", folder / f"{name}.key"
        c.write_bytes(self.cert)
        k.write_bytes(self.key)
        return c, k


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _builder(subject: str, issuer: x509.Name | None, key: PrivateKey) -> x509.CertificateBuilder:
    """A certificate for `key`, valid from five minutes ago for a day (self-issued when
    `issuer` is None)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def make_ca(name: str) -> tuple[Pem, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = new_ec_key()
    cert = (
        _builder(name, None, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)), cert, key


def make_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    server: bool,
    rsa_key: bool = False,
) -> Pem:
    """A certificate signed by the CA: for a server on loopback (SANs localhost and 127.0.0.1),
    else for a client named `common_name`; an RSA key when asked, else an EC one."""
    key: PrivateKey = new_rsa_key() if rsa_key else new_ec_key()
    names: list[x509.GeneralName] = [x509.DNSName(common_name)]
    if server:
        names = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        _builder(common_name, ca_cert.subject, key)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass
class AppCertificate:
    key_pem: str
    cert_pem: str
    sha1_hex: str


def make_app_certificate(cn: str = "commsgw test app") -> AppCertificate:
    """An app registration's certificate credential (an RSA key with a self-signed
    certificate), as PEM text and its SHA-1 thumbprint."""
    key = new_rsa_key()
    cert = _builder(cn, None, key).sign(key, hashes.SHA256())
    der = cert.public_bytes(serialization.Encoding.DER)
    return AppCertificate(
        key_pem=_key_pem(key).decode(),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        sha1_hex=hashlib.sha1(der).hexdigest().upper(),
    )
