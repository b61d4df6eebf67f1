"""The settings of how the gateway serves: logging, TLS and callers, gRPC connection limits
and shutdown (the rest of `Settings` is in `_settings`)."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from commsgw._config._declare import LIMITS, LOGGING, SHUTDOWN, TLS, setting
from commsgw._config._values import (
    _non_negative_float,
    _path,
    _positive_float,
    _positive_int,
    _str,
)


@dataclass(frozen=True, slots=True)
class ServingSettings:
    """Logging, TLS and callers, connection limits and shutdown: the base of `Settings`."""

    log_level: str = setting(
        "COMMSGW_LOG_LEVEL", "INFO", _str, "DEBUG, INFO, WARNING or ERROR", group=LOGGING
    )
    log_format: str = setting(
        "COMMSGW_LOG_FORMAT",
        "json",
        _str,
        "json (one object a line) or text",
        group=LOGGING,
    )
    loop_lag_probe_s: float = setting(
        "COMMSGW_LOOP_LAG_PROBE_S",
        "0",
        _non_negative_float,
        "measure the event loop's lag every this many seconds, and the garbage collector's "
        "pauses, as histograms at /metrics (0: off; for benchmarks and diagnosis)",
        group=LOGGING,
    )
    grpc_tls_cert: pathlib.Path | None = setting(
        "COMMSGW_GRPC_TLS_CERT",
        "",
        _path,
        "PEM certificate chain for gRPC TLS",
        group=TLS,
    )
    grpc_tls_key: pathlib.Path | None = setting(
        "COMMSGW_GRPC_TLS_KEY",
        "",
        _path,
        "PEM private key for gRPC TLS",
        group=TLS,
    )
    grpc_client_ca: pathlib.Path | None = setting(
        "COMMSGW_GRPC_CLIENT_CA",
        "",
        _path,
        "CA bundle for client certificates: set it to require mutual TLS",
        group=TLS,
    )
    http_tls_cert: pathlib.Path | None = setting(
        "COMMSGW_HTTP_TLS_CERT",
        "",
        _path,
        "PEM certificate chain for HTTPS",
        group=TLS,
    )
    http_tls_key: pathlib.Path | None = setting(
        "COMMSGW_HTTP_TLS_KEY",
        "",
        _path,
        "PEM private key for HTTPS",
        group=TLS,
    )
    callers_file: pathlib.Path | None = setting(
        "COMMSGW_CALLERS_FILE",
        "",
        _path,
        "JSON file of caller identities and permissions (unset: every caller is trusted)",
        group=TLS,
    )
    shutdown_grace_s: float = setting(
        "COMMSGW_SHUTDOWN_GRACE_S",
        "10",
        _positive_float,
        "on SIGTERM, the longest the gateway takes to stop (seconds)",
        group=SHUTDOWN,
    )
    webhook_drain_s: float = setting(
        "COMMSGW_WEBHOOK_DRAIN_S",
        "2",
        _non_negative_float,
        "on SIGTERM, how long the webhook keeps accepting callbacks (seconds)",
        group=SHUTDOWN,
    )
    keepalive_time_s: float = setting(
        "COMMSGW_KEEPALIVE_TIME_S",
        "60",
        _positive_float,
        "gRPC keepalive ping interval (seconds)",
        group=LIMITS,
    )
    keepalive_timeout_s: float = setting(
        "COMMSGW_KEEPALIVE_TIMEOUT_S",
        "20",
        _positive_float,
        "gRPC keepalive ping timeout (seconds)",
        group=LIMITS,
    )
    max_connection_age_s: float = setting(
        "COMMSGW_MAX_CONNECTION_AGE_S",
        "1800",
        _positive_float,
        "gRPC connections are recycled after this long (clients resume watches)",
        group=LIMITS,
    )
    max_connection_age_grace_s: float = setting(
        "COMMSGW_MAX_CONNECTION_AGE_GRACE_S",
        "30",
        _positive_float,
        "time given to calls on a recycled connection (seconds)",
        group=LIMITS,
    )
    max_streams: int = setting(
        "COMMSGW_MAX_STREAMS",
        "20000",
        _positive_int,
        "open WatchOperations streams at most (RESOURCE_EXHAUSTED beyond)",
        group=LIMITS,
    )
    max_streams_per_caller: int = setting(
        "COMMSGW_MAX_STREAMS_PER_CALLER",
        "5000",
        _positive_int,
        "open WatchOperations streams per caller identity at most (with a callers file)",
        group=LIMITS,
    )
    max_message_bytes: int = setting(
        "COMMSGW_MAX_MESSAGE_BYTES",
        "1048576",
        _positive_int,
        "largest gRPC message received or sent",
        group=LIMITS,
    )
