"""What the asyncio and the blocking clients share: options, metadata, requests, backoff."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc

from graphcomms.v1 import calls_pb2

CertSource = bytes | str | os.PathLike[str]
"""PEM data as bytes, or the path of a PEM file."""

TokenSource = str | Callable[[], str]
"""A bearer token, or a function returning the current one (called before every RPC)."""

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
"""Watch failures that are resumed with the last token (plus a stream that simply closed),
except the reasons in NOT_RESUMED."""

NOT_RESUMED = frozenset({"TOO_MANY_STREAMS"})
"""Reasons that are raised, not resumed: the gateway's stream limit is reached, and resuming in
a loop would only add load (close other streams, or back off in the application)."""


def resumes(code: grpc.StatusCode, reason: str) -> bool:
    """Whether a watch that failed with this status resumes by itself."""
    return code in RETRYABLE and reason not in NOT_RESUMED


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How a watch resumes: exponential backoff with jitter, bounded.

    The n-th consecutive failed attempt (n = 0, 1, ...) waits a random time in
    ``[d/2, d]`` with ``d = min(max_backoff, initial_backoff * multiplier**n)``, or the gateway's
    RetryInfo delay when it is longer (still at most ``max_backoff``). Any response received
    resets the count. When ``max_attempts`` reconnects in a row brought no response (None: never
    give up), the next failure is raised.
    """

    initial_backoff: float = 0.2
    max_backoff: float = 10.0
    multiplier: float = 2.0
    max_attempts: int | None = None

    def delay(
        self, attempt: int, hint: float | None = None, rng: random.Random | None = None
    ) -> float:
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** min(attempt, 64))
        wait = (rng or random).uniform(ceiling / 2, ceiling)
        if hint is not None and hint > wait:
            wait = hint
        return min(wait, self.max_backoff)


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


def call_metadata(
    bearer_token: TokenSource | None, client_request_id: str | None = None
) -> tuple[tuple[str, str], ...]:
    md: list[tuple[str, str]] = []
    if bearer_token is not None:
        token = bearer_token() if callable(bearer_token) else bearer_token
        if token:
            md.append(("authorization", f"Bearer {token}"))
    if client_request_id:
        md.append(("x-client-request-id", client_request_id))
    return tuple(md)


def watch_request(
    *,
    call_ids: Iterable[str],
    tenant_ids: Iterable[str],
    operation_types: Iterable[calls_pb2.OperationType.ValueType],
    statuses: Iterable[calls_pb2.OperationStatus.ValueType],
    client_context: str,
    include_call_updates: bool,
    include_other: bool,
    include_snapshot: bool,
    resume_token: str,
) -> calls_pb2.WatchOperationsRequest:
    return calls_pb2.WatchOperationsRequest(
        call_ids=list(call_ids),
        tenant_ids=list(tenant_ids),
        operation_types=list(operation_types),
        statuses=list(statuses),
        client_context=client_context,
        include_call_updates=include_call_updates,
        include_other=include_other,
        include_snapshot=include_snapshot,
        resume_token=resume_token,
    )


def resumed(
    request: calls_pb2.WatchOperationsRequest, token: str
) -> calls_pb2.WatchOperationsRequest:
    """The request that continues after `token` (the original one while there is none)."""
    if not token:
        return request
    again = calls_pb2.WatchOperationsRequest()
    again.CopyFrom(request)
    again.resume_token = token
    again.include_snapshot = False
    return again
