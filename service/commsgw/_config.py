"""Settings: built once at start-up from the environment and the command line, then passed down.

Every setting has an environment variable and a flag (the flag wins); `SETTINGS` is the single
table that argparse, the validation and the README table are made from. Only the command-line
entry point hands the environment in; no other module reads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from commsgw._errors import ConfigError
from commsgw._ids import normalize_guid

T = TypeVar("T")

EMULATOR_TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
EMULATOR_CLIENT_ID = "00000000-0000-0000-0000-0000000000bb"
EMULATOR_CLIENT_SECRET = "emulator-secret"


@dataclass(frozen=True, slots=True)
class Cloud:
    """A national cloud: where Graph lives and where its app tokens come from."""

    name: str
    graph_url: str
    authority_host: str
    notification_openid_url: str


# Graph hosts, authorities and scopes per national cloud (graph-comms.md, "Endpoints per
# national cloud"). cancelMediaProcessing is not offered in China (21Vianet).
SKYPE_OPENID = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"
CLOUDS: dict[str, Cloud] = {
    "global": Cloud(
        "global", "https://graph.microsoft.com", "https://login.microsoftonline.com", SKYPE_OPENID
    ),
    "usgov": Cloud(
        "usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us", SKYPE_OPENID
    ),
    "dod": Cloud(
        "dod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us", SKYPE_OPENID
    ),
}
UNSUPPORTED_CLOUDS = {
    "china": "the Graph calls API (cancelMediaProcessing) is not offered in the China cloud "
    "operated by 21Vianet; use global, usgov or dod",
}


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def _address(raw: str) -> Address:
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT")
    host = host.strip("[]")
    p = int(port)
    if not 0 <= p <= 65535:
        raise ValueError("port out of range")
    return Address(host, p)


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _positive_float(raw: str) -> float:
    v = float(raw)
    if not v > 0:
        raise ValueError("must be greater than 0")
    return v


def _non_negative_float(raw: str) -> float:
    v = float(raw)
    if not v >= 0:
        raise ValueError("must be 0 or more")
    return v


def _positive_int(raw: str) -> int:
    v = int(raw)
    if v <= 0:
        raise ValueError("must be greater than 0")
    return v


def _tenant_list(raw: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        g = normalize_guid(part)
        if g is None:
            raise ValueError(f"{part!r} is not a tenant GUID")
        out.append(g)
    return tuple(out)


def _path(raw: str) -> pathlib.Path | None:
    return pathlib.Path(raw) if raw else None


def _dir(raw: str) -> pathlib.Path:
    if not raw:
        raise ValueError("must name a folder")
    return pathlib.Path(raw)


def _str(raw: str) -> str:
    return raw


def _transport(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("httpx", "aiohttp"):
        raise ValueError("use httpx or aiohttp")
    return value


def _loop(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("uvloop", "asyncio"):
        raise ValueError("use uvloop or asyncio")
    return value


def _url_path(raw: str) -> str:
    if not raw.startswith("/"):
        raise ValueError("must start with /")
    return raw


DEFAULT_STATE_DIR = ".commsgw"
_SETTING = "commsgw_setting"


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table: a field of Settings, its variable, default and help."""

    attr: str
    env: str
    default: str
    parse: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.attr.replace("_", "-")


def setting(env: str, default: str, parse: Callable[[str], T], help: str) -> T:
    """Declare a setting: a Settings field whose default is `parse(default)`."""
    info = {_SETTING: (env, default, parse, help)}
    return field(default=parse(default), metadata=info)


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated settings of one gateway process."""

    grpc_addr: Address = setting(
        "COMMSGW_GRPC_ADDR", "127.0.0.1:50051", _address, "gRPC listen address"
    )
    http_addr: Address = setting(
        "COMMSGW_HTTP_ADDR",
        "127.0.0.1:8080",
        _address,
        "HTTP listen address (webhook for Graph's callbacks)",
    )
    webhook_path: str = setting(
        "COMMSGW_WEBHOOK_PATH", "/api/calls", _url_path, "callback path on HTTP"
    )
    webhook_max_bytes: int = setting(
        "COMMSGW_WEBHOOK_MAX_BYTES",
        "1048576",
        _positive_int,
        "largest notification POST accepted (413 above)",
    )
    cloud: str = setting(
        "COMMSGW_CLOUD",
        "global",
        _str,
        "national cloud: global, usgov (L4) or dod (L5); china is refused",
    )
    tenant_id: str = setting(
        "AZURE_TENANT_ID", "", _str, "the app's tenant (GUID); unset = emulator mode"
    )
    client_id: str = setting("AZURE_CLIENT_ID", "", _str, "the app (client) id of the bot (GUID)")
    client_secret: str = setting("AZURE_CLIENT_SECRET", "", _str, "the app's client secret")
    client_certificate_path: pathlib.Path | None = setting(
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "",
        _path,
        "PEM file with the app's certificate and private key (instead of a secret)",
    )
    client_certificate_password: str = setting(
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "",
        _str,
        "password of the certificate's private key, if any",
    )
    extra_tenants: tuple[str, ...] = setting(
        "COMMSGW_EXTRA_TENANTS",
        "",
        _tenant_list,
        "comma-separated further tenant GUIDs callers may name (multi-tenant apps)",
    )
    graph_url: str = setting(
        "COMMSGW_GRAPH_URL",
        "",
        _str,
        "override Graph's base URL (default: the cloud's, or the emulator's)",
    )
    authority_host: str = setting(
        "COMMSGW_AUTHORITY_HOST",
        "",
        _str,
        "override the token authority host (default: the cloud's, or the emulator's)",
    )
    ca_file: pathlib.Path | None = setting(
        "COMMSGW_CA_FILE",
        "",
        _path,
        "extra CA bundle to trust for Graph and the token authority (default: the emulator's CA "
        "in emulator mode)",
    )
    emulator_url: str = setting(
        "COMMSGW_EMULATOR_URL",
        "https://127.0.0.1:8443",
        _str,
        "the Graph emulator used when no Azure credentials are set",
    )
    state_dir: pathlib.Path = setting(
        "COMMSGW_STATE_DIR",
        DEFAULT_STATE_DIR,
        _dir,
        "folder for local state (the emulator's certificate files)",
    )
    graph_timeout_s: float = setting(
        "COMMSGW_GRAPH_TIMEOUT_S",
        "10",
        _positive_float,
        "longest single Graph request (seconds); the caller's deadline cuts it shorter",
    )
    graph_max_attempts: int = setting(
        "COMMSGW_GRAPH_MAX_ATTEMPTS",
        "4",
        _positive_int,
        "attempts per Graph request for 429/503/504/connection errors",
    )
    retry_base_s: float = setting(
        "COMMSGW_RETRY_BASE_S",
        "0.5",
        _positive_float,
        "first backoff without Retry-After (doubles each attempt, full jitter)",
    )
    retry_max_s: float = setting(
        "COMMSGW_RETRY_MAX_S",
        "10",
        _positive_float,
        "longest wait between attempts, Retry-After included",
    )
    notification_openid_url: str = setting(
        "COMMSGW_NOTIFICATION_OPENID_URL",
        "",
        _str,
        "OpenID configuration whose keys sign Graph's callbacks (default: Microsoft's, or the "
        "emulator's)",
    )
    insecure_skip_notification_auth: bool = setting(
        "COMMSGW_INSECURE_SKIP_NOTIFICATION_AUTH",
        "false",
        _bool,
        "accept callbacks without validating their token (never in production)",
    )
    event_log: str = setting(
        "COMMSGW_EVENT_LOG",
        "memory",
        _str,
        "event log: memory, or redis://HOST:PORT/DB to share one across replicas",
    )
    event_log_max_events: int = setting(
        "COMMSGW_EVENT_LOG_MAX_EVENTS", "100000", _positive_int, "events the log retains at most"
    )
    event_log_max_age_s: float = setting(
        "COMMSGW_EVENT_LOG_MAX_AGE_S",
        "3600",
        _positive_float,
        "oldest event the log retains (seconds); also the duplicate window",
    )
    event_log_key: str = setting(
        "COMMSGW_EVENT_LOG_KEY", "commsgw", _str, "key prefix of the Redis event log"
    )
    subscriber_buffer: int = setting(
        "COMMSGW_SUBSCRIBER_BUFFER",
        "1024",
        _positive_int,
        "events buffered per subscriber before it is cut off as too slow",
    )
    bookmark_interval_s: float = setting(
        "COMMSGW_BOOKMARK_INTERVAL_S",
        "30",
        _positive_float,
        "idle watch streams get a progress bookmark this often (seconds)",
    )
    log_level: str = setting("COMMSGW_LOG_LEVEL", "INFO", _str, "DEBUG, INFO, WARNING or ERROR")
    log_format: str = setting(
        "COMMSGW_LOG_FORMAT", "json", _str, "json (one object a line) or text"
    )
    grpc_tls_cert: pathlib.Path | None = setting(
        "COMMSGW_GRPC_TLS_CERT", "", _path, "PEM certificate chain for gRPC TLS"
    )
    grpc_tls_key: pathlib.Path | None = setting(
        "COMMSGW_GRPC_TLS_KEY", "", _path, "PEM private key for gRPC TLS"
    )
    grpc_client_ca: pathlib.Path | None = setting(
        "COMMSGW_GRPC_CLIENT_CA",
        "",
        _path,
        "CA bundle for client certificates: set it to require mutual TLS",
    )
    http_tls_cert: pathlib.Path | None = setting(
        "COMMSGW_HTTP_TLS_CERT", "", _path, "PEM certificate chain for HTTPS"
    )
    http_tls_key: pathlib.Path | None = setting(
        "COMMSGW_HTTP_TLS_KEY", "", _path, "PEM private key for HTTPS"
    )
    allow_insecure_bind: bool = setting(
        "COMMSGW_ALLOW_INSECURE_BIND",
        "false",
        _bool,
        "allow a non-loopback address without TLS (and, for gRPC, without caller auth)",
    )
    callers_file: pathlib.Path | None = setting(
        "COMMSGW_CALLERS_FILE",
        "",
        _path,
        "JSON file of caller identities and permissions (unset: every caller is trusted)",
    )
    reflection: bool = setting("COMMSGW_REFLECTION", "true", _bool, "serve gRPC server reflection")
    shutdown_grace_s: float = setting(
        "COMMSGW_SHUTDOWN_GRACE_S",
        "10",
        _positive_float,
        "on SIGTERM, the longest the gateway takes to stop (seconds)",
    )
    webhook_drain_s: float = setting(
        "COMMSGW_WEBHOOK_DRAIN_S",
        "2",
        _non_negative_float,
        "on SIGTERM, how long the webhook keeps accepting callbacks (seconds)",
    )
    keepalive_time_s: float = setting(
        "COMMSGW_KEEPALIVE_TIME_S", "60", _positive_float, "gRPC keepalive ping interval (seconds)"
    )
    keepalive_timeout_s: float = setting(
        "COMMSGW_KEEPALIVE_TIMEOUT_S",
        "20",
        _positive_float,
        "gRPC keepalive ping timeout (seconds)",
    )
    max_connection_age_s: float = setting(
        "COMMSGW_MAX_CONNECTION_AGE_S",
        "1800",
        _positive_float,
        "gRPC connections are recycled after this long (clients resume watches)",
    )
    max_connection_age_grace_s: float = setting(
        "COMMSGW_MAX_CONNECTION_AGE_GRACE_S",
        "30",
        _positive_float,
        "time given to calls on a recycled connection (seconds)",
    )
    max_streams: int = setting(
        "COMMSGW_MAX_STREAMS",
        "20000",
        _positive_int,
        "open WatchOperations streams at most (RESOURCE_EXHAUSTED beyond)",
    )
    max_streams_per_caller: int = setting(
        "COMMSGW_MAX_STREAMS_PER_CALLER",
        "5000",
        _positive_int,
        "open WatchOperations streams per caller identity at most (with a callers file)",
    )
    max_message_bytes: int = setting(
        "COMMSGW_MAX_MESSAGE_BYTES",
        "1048576",
        _positive_int,
        "largest gRPC message received or sent",
    )
    webhook_rate: float = setting(
        "COMMSGW_WEBHOOK_RATE",
        "2000",
        _positive_float,
        "webhook POSTs per second per source address (429 beyond; burst of twice that)",
    )
    graph_concurrency: int = setting(
        "COMMSGW_GRAPH_CONCURRENCY",
        "256",
        _positive_int,
        "Graph requests in flight at most (a burst of cancels waits its turn)",
    )
    event_loop: str = setting(
        "COMMSGW_EVENT_LOOP",
        "uvloop",
        _loop,
        "uvloop (faster webhook and fan-out, measured in bench/) or asyncio",
    )
    graph_http_transport: str = setting(
        "COMMSGW_GRAPH_HTTP_TRANSPORT",
        "aiohttp",
        _transport,
        "HTTP transport under the Graph client: aiohttp (httpx-aiohttp, faster under concurrency) "
        "or httpx (httpx's own pool)",
    )
    # Derived in `resolve()`:
    emulator_mode: bool = False
    tenants: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never print secrets
        shown = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("client_secret", "client_certificate_password")
        }
        return f"Settings({shown!r})"

    @property
    def scope(self) -> str:
        return f"{self.graph_url.rstrip('/')}/.default"

    @property
    def graph_v1_url(self) -> str:
        return f"{self.graph_url.rstrip('/')}/v1.0"

    def resolve(self) -> Settings:
        """Validate and fill the derived fields; raises ConfigError naming the setting."""
        cloud = self.cloud.strip().lower()
        if cloud in UNSUPPORTED_CLOUDS:
            raise ConfigError(f"COMMSGW_CLOUD={cloud}: {UNSUPPORTED_CLOUDS[cloud]}")
        if cloud not in CLOUDS:
            raise ConfigError(
                f"COMMSGW_CLOUD={self.cloud!r} is not a cloud; use one of {', '.join(CLOUDS)}"
            )
        emulator = not (self.tenant_id or self.client_id)
        tenant, client, secret = self.tenant_id, self.client_id, self.client_secret
        graph_url, authority, openid = (
            self.graph_url,
            self.authority_host,
            self.notification_openid_url,
        )
        ca_file = self.ca_file
        if emulator:
            if self.client_secret or self.client_certificate_path:
                raise ConfigError(
                    "AZURE_CLIENT_SECRET/AZURE_CLIENT_CERTIFICATE_PATH are set but "
                    "AZURE_TENANT_ID and AZURE_CLIENT_ID are not"
                )
            _check_https("COMMSGW_EMULATOR_URL", self.emulator_url)
            base = self.emulator_url.rstrip("/")
            tenant, client, secret = EMULATOR_TENANT_ID, EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET
            graph_url = graph_url or base
            authority = authority or base
            openid = openid or f"{base}/v1/.well-known/OpenIdConfiguration"
            if ca_file is None:
                ca_file = self.state_dir / "emulator-ca.pem"
        else:
            c = CLOUDS[cloud]
            if normalize_guid(tenant) is None:
                raise ConfigError(f"AZURE_TENANT_ID={tenant!r} is not a tenant GUID")
            if normalize_guid(client) is None:
                raise ConfigError(f"AZURE_CLIENT_ID={client!r} is not an application GUID")
            if not secret and self.client_certificate_path is None:
                raise ConfigError(
                    f"set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH for the app {client}"
                )
            if secret and self.client_certificate_path is not None:
                raise ConfigError(
                    "set only one of AZURE_CLIENT_SECRET and AZURE_CLIENT_CERTIFICATE_PATH"
                )
            if self.client_certificate_path is not None and not (
                self.client_certificate_path.is_file()
            ):
                raise ConfigError(
                    f"AZURE_CLIENT_CERTIFICATE_PATH={self.client_certificate_path}: no such file"
                )
            graph_url = graph_url or c.graph_url
            authority = authority or c.authority_host
            openid = openid or c.notification_openid_url
        for env, value in (
            ("COMMSGW_GRAPH_URL", graph_url),
            ("COMMSGW_AUTHORITY_HOST", authority),
            ("COMMSGW_NOTIFICATION_OPENID_URL", openid),
        ):
            _check_https(env, value)
        tenant_norm = normalize_guid(tenant)
        assert tenant_norm is not None
        tenants = (tenant_norm, *(t for t in self.extra_tenants if t != tenant_norm))
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"COMMSGW_LOG_LEVEL={self.log_level!r}: use DEBUG, INFO, ...")
        if self.event_log != "memory" and not self.event_log.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError(f"COMMSGW_EVENT_LOG={self.event_log!r}: use memory or a redis:// URL")
        if self.retry_max_s < self.retry_base_s:
            raise ConfigError("COMMSGW_RETRY_MAX_S must not be smaller than COMMSGW_RETRY_BASE_S")
        if not self.webhook_path.startswith("/"):
            raise ConfigError(f"COMMSGW_WEBHOOK_PATH={self.webhook_path!r} must start with /")
        if self.log_format not in ("json", "text"):
            raise ConfigError(f"COMMSGW_LOG_FORMAT={self.log_format!r}: use json or text")
        for prefix, cert, key in (
            ("COMMSGW_GRPC_TLS", self.grpc_tls_cert, self.grpc_tls_key),
            ("COMMSGW_HTTP_TLS", self.http_tls_cert, self.http_tls_key),
        ):
            if (cert is None) != (key is None):
                raise ConfigError(f"set both {prefix}_CERT and {prefix}_KEY, or neither")
        for env, path in (
            ("COMMSGW_GRPC_TLS_CERT", self.grpc_tls_cert),
            ("COMMSGW_GRPC_TLS_KEY", self.grpc_tls_key),
            ("COMMSGW_GRPC_CLIENT_CA", self.grpc_client_ca),
            ("COMMSGW_HTTP_TLS_CERT", self.http_tls_cert),
            ("COMMSGW_HTTP_TLS_KEY", self.http_tls_key),
            ("COMMSGW_CALLERS_FILE", self.callers_file),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"{env}={path}: no such file")
        if self.grpc_client_ca is not None and self.grpc_tls_cert is None:
            raise ConfigError("COMMSGW_GRPC_CLIENT_CA needs COMMSGW_GRPC_TLS_CERT/KEY")
        if not self.allow_insecure_bind:
            grpc_secure = self.grpc_tls_cert is not None and (
                self.grpc_client_ca is not None or self.callers_file is not None
            )
            if not self.grpc_addr.is_loopback and not grpc_secure:
                raise ConfigError(
                    f"COMMSGW_GRPC_ADDR={self.grpc_addr} is not loopback: set "
                    "COMMSGW_GRPC_TLS_CERT/KEY with COMMSGW_CALLERS_FILE or "
                    "COMMSGW_GRPC_CLIENT_CA, or COMMSGW_ALLOW_INSECURE_BIND=true"
                )
            if not self.http_addr.is_loopback and self.http_tls_cert is None:
                raise ConfigError(
                    f"COMMSGW_HTTP_ADDR={self.http_addr} is not loopback: set "
                    "COMMSGW_HTTP_TLS_CERT/KEY, or COMMSGW_ALLOW_INSECURE_BIND=true behind a "
                    "TLS-terminating proxy"
                )
        return dataclasses.replace(
            self,
            cloud=cloud,
            tenant_id=tenant_norm,
            client_id=client.lower(),
            client_secret=secret,
            graph_url=graph_url.rstrip("/"),
            authority_host=authority.rstrip("/"),
            notification_openid_url=openid,
            ca_file=ca_file,
            log_level=self.log_level.upper(),
            emulator_mode=emulator,
            tenants=tenants,
        )


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, *f.metadata[_SETTING])
    for f in dataclasses.fields(Settings)
    if _SETTING in f.metadata
)


def _check_https(env: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"{env}={url!r} must be an https:// URL")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults come from the environment in `from_sources`."""
    for s in SETTINGS:
        parser.add_argument(
            s.flag, dest=s.attr, default=None, metavar=s.env, help=f"{s.help} [{s.env}]"
        )


def from_sources(
    environ: Mapping[str, str],
    args: argparse.Namespace | None = None,
    *,
    defaults: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Build and validate Settings: `overrides`, else the flag, else the environment variable,
    else `defaults` (a command's own defaults, by attribute name), else the table's default."""
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw: str | None = None
        source = s.env
        if overrides is not None and s.attr in overrides:
            raw = overrides[s.attr]
        if raw is None and args is not None:
            raw = getattr(args, s.attr, None)
            source = s.flag
        if raw is None:
            raw = environ.get(s.env)
            source = s.env
        if raw is None:
            if defaults is not None and s.attr in defaults:
                raw = defaults[s.attr]
            else:
                continue  # the field's default: the table's, parsed once
        try:
            values[s.attr] = s.parse(raw)
        except ValueError as exc:
            shown = "***" if "SECRET" in s.env or "PASSWORD" in s.env else repr(raw)
            raise ConfigError(f"{source}={shown}: {exc}") from None
    return Settings(**values).resolve()


def settings_table() -> Sequence[tuple[str, str, str, str]]:
    """(env, flag, default, help) for the README."""
    return [(s.env, s.flag, s.default, s.help) for s in SETTINGS]
