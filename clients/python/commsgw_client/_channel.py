"""How a client's channel is configured: TLS material (PEM bytes or files), the server name
override, and gRPC's reconnect backoff bounded by the watch's :class:`RetryPolicy`."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import grpc

CertSource = bytes | str | os.PathLike[str]
"""PEM data as bytes, or the path of a PEM file."""


def read_pem(source: CertSource | None) -> bytes | None:
    if source is None:
        return None
    if isinstance(source, bytes):
        return source
    return pathlib.Path(source).read_bytes()


@dataclasses.dataclass(frozen=True)
class ChannelConfig:
    target: str
    tls: bool
    root_certificates: bytes | None
    client_certificate: bytes | None
    client_private_key: bytes | None
    options: tuple[tuple[str, Any], ...]

    @classmethod
    def make(
        cls,
        target: str,
        *,
        tls: bool | None,
        root_certificates: CertSource | None,
        client_certificate: CertSource | None,
        client_private_key: CertSource | None,
        server_name: str | None,
        options: Sequence[tuple[str, Any]],
        max_reconnect_backoff: float,
    ) -> ChannelConfig:
        if (client_certificate is None) != (client_private_key is None):
            raise ValueError("client_certificate and client_private_key go together (mTLS)")
        wants_tls = any(x is not None for x in (root_certificates, client_certificate))
        if tls is False and wants_tls:
            raise ValueError("tls=False contradicts the certificates given")
        opts = list(options)
        names = {name for name, _ in opts}
        # gRPC's own reconnect backoff grows to 120 s by default: a watch resuming after a
        # replica restart should not wait longer than its RetryPolicy allows.
        if "grpc.max_reconnect_backoff_ms" not in names:
            opts.append(("grpc.max_reconnect_backoff_ms", int(max_reconnect_backoff * 1000)))
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
        return cls(
            target=target,
            tls=bool(tls) or wants_tls,
            root_certificates=read_pem(root_certificates),
            client_certificate=read_pem(client_certificate),
            client_private_key=read_pem(client_private_key),
            options=tuple(opts),
        )

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.client_private_key,
            certificate_chain=self.client_certificate,
        )
