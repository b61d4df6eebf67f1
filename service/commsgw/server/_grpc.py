"""The gRPC server: channel options, one handler per RPC of the contract, listening."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory

# Reflection serves files from the default descriptor pool, by name and by the symbols they
# hold: these imports put there what an error's status details carry (google.rpc.ErrorInfo,
# RetryInfo, Status) and the ErrorReason enum, so that a reflection client decodes them.
from google.rpc import error_details_pb2, status_pb2  # noqa: F401
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from commsgw._config import Address
from commsgw._errors import ConfigError
from commsgw.server._wire import lenient_deserializer, serialize
from graphcomms.v1 import calls_pb2, errors_pb2  # noqa: F401

SERVICE = calls_pb2.DESCRIPTOR.services_by_name["CallsService"]
SERVICE_NAME = SERVICE.full_name


@dataclass(frozen=True, slots=True)
class GrpcConfig:
    """Where the gRPC server listens, its TLS, its connection limits and whether it serves
    reflection."""

    addr: Address
    tls_cert: pathlib.Path | None
    tls_key: pathlib.Path | None
    # Callers' CA: with it, mutual TLS (a client certificate is required).
    client_ca: pathlib.Path | None
    keepalive_time_s: float
    keepalive_timeout_s: float
    max_connection_age_s: float
    max_connection_age_grace_s: float
    max_message_bytes: int
    max_streams: int
    reflection: bool


def options(s: GrpcConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_time_ms", int(s.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(s.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.max_connection_age_ms", int(s.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(s.max_connection_age_grace_s * 1000)),
        # gRPC core cancels calls that arrive faster than the server picks them up once more
        # than 1,000 (3,000 hard) are pending: a burst of reconnecting subscribers (a replica
        # restart) would lose streams. Let as many wait as the gateway would serve.
        ("grpc.server.max_pending_requests", max(1000, s.max_streams)),
        ("grpc.server.max_pending_requests_hard_limit", max(3000, 2 * s.max_streams)),
        ("grpc.max_receive_message_length", s.max_message_bytes),
        ("grpc.max_send_message_length", s.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


Wrap = Callable[[str, "grpc.RpcMethodHandler[Any, Any]"], "grpc.RpcMethodHandler[Any, Any]"]


def service_handlers(servicer: Any, wrap: Wrap) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The RPCs of graphcomms.v1.CallsService by method name, each served by the servicer's
    method of the same name, with lenient request decoding and pre-serialised responses
    allowed, and each passed once through `wrap` (the gateway's guard) with its full name."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in SERVICE.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        behaviour = servicer.handler(method.name)
        if behaviour is None:  # not served yet: gRPC answers UNIMPLEMENTED
            continue
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = wrap(
            f"/{SERVICE_NAME}/{method.name}",
            make(
                behaviour,
                request_deserializer=lenient_deserializer(request_type),
                response_serializer=serialize,
            ),
        )
    return handlers


def build(
    s: GrpcConfig,
    *,
    servicer: Any,
    wrap: Wrap,
    health_servicer: health.aio.HealthServicer,
) -> grpc.aio.Server:
    server = grpc.aio.server(options=options(s))
    # A generic handler, not `add_registered_method_handlers`: with grpcio 1.85 the registered
    # path executed about 12% more instructions per cancel (bench._instr, same run).
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, service_handlers(servicer, wrap)),)
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if s.reflection:
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
    return server


def listen(server: grpc.aio.Server, s: GrpcConfig) -> int:
    """Add the listening port (TLS, mutual TLS or plaintext); the port bound."""
    try:
        if s.tls_cert is not None and s.tls_key is not None:
            creds = grpc.ssl_server_credentials(
                [(s.tls_key.read_bytes(), s.tls_cert.read_bytes())],
                root_certificates=(s.client_ca.read_bytes() if s.client_ca is not None else None),
                require_client_auth=s.client_ca is not None,
            )
            return server.add_secure_port(str(s.addr), creds)
        return server.add_insecure_port(str(s.addr))
    except RuntimeError as exc:
        raise ConfigError(f"COMMSGW_GRPC_ADDR={s.addr}: cannot listen ({exc})") from None
