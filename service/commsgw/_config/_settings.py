"""Settings: one declaration per setting (its variable, default, parser and help) and the table
derived from those declarations."""

from __future__ import annotations

import dataclasses
import pathlib
from dataclasses import dataclass

from commsgw._config._declare import (
    _SETTING,
    EMULATOR,
    EVENT_LOG,
    GRAPH,
    GROUPS,
    KEEPALIVE,
    LISTENING,
    WEBHOOK,
    Setting,
    setting,
)
from commsgw._config._redis import RedisSettings
from commsgw._config._values import (
    Address,
    _address,
    _bool,
    _dir,
    _loop,
    _non_negative_float,
    _path,
    _positive_float,
    _positive_int,
    _str,
    _tenant_list,
    _transport,
    _url_path,
)

DEFAULT_STATE_DIR = ".commsgw"
__all__ = ["DEFAULT_STATE_DIR", "GROUPS", "SETTINGS", "Setting", "Settings", "setting"]


@dataclass(frozen=True, slots=True)
class Settings(RedisSettings):
    """Validated settings of one gateway process (the connection, TLS, limit, logging and
    shutdown settings are declared in `ServingSettings`, the Redis deployment ones in
    `RedisSettings`)."""

    grpc_addr: Address = setting(
        "COMMSGW_GRPC_ADDR",
        "127.0.0.1:50051",
        _address,
        "gRPC listen address",
        group=LISTENING,
    )
    http_addr: Address = setting(
        "COMMSGW_HTTP_ADDR",
        "127.0.0.1:8080",
        _address,
        "HTTP listen address (webhook for Graph's callbacks)",
        group=LISTENING,
    )
    webhook_path: str = setting(
        "COMMSGW_WEBHOOK_PATH",
        "/api/calls",
        _url_path,
        "callback path on HTTP",
        group=WEBHOOK,
    )
    public_webhook_url: str = setting(
        "COMMSGW_PUBLIC_WEBHOOK_URL",
        "",
        _str,
        "the webhook's URL as Graph reaches it (https), the default callbackUri of CreateCall "
        "and AnswerCall (emulator mode: the local webhook)",
        group=WEBHOOK,
    )
    webhook_max_bytes: int = setting(
        "COMMSGW_WEBHOOK_MAX_BYTES",
        "1048576",
        _positive_int,
        "largest notification POST accepted (413 above)",
        group=WEBHOOK,
    )
    cloud: str = setting(
        "COMMSGW_CLOUD",
        "global",
        _str,
        "national cloud: global, usgov (L4) or dod (L5); china is refused",
        group=GRAPH,
    )
    tenant_id: str = setting(
        "AZURE_TENANT_ID",
        "",
        _str,
        "the app's tenant (GUID); unset = emulator mode",
        group=GRAPH,
    )
    client_id: str = setting(
        "AZURE_CLIENT_ID", "", _str, "the app (client) id of the bot (GUID)", group=GRAPH
    )
    client_secret: str = setting(
        "AZURE_CLIENT_SECRET", "", _str, "the app's client secret", group=GRAPH
    )
    client_certificate_path: pathlib.Path | None = setting(
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "",
        _path,
        "PEM file with the app's certificate and private key (instead of a secret)",
        group=GRAPH,
    )
    client_certificate_password: str = setting(
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "",
        _str,
        "password of the certificate's private key, if any",
        group=GRAPH,
    )
    extra_tenants: tuple[str, ...] = setting(
        "COMMSGW_EXTRA_TENANTS",
        "",
        _tenant_list,
        "comma-separated further tenant GUIDs callers may name (multi-tenant apps)",
        group=GRAPH,
    )
    graph_url: str = setting(
        "COMMSGW_GRAPH_URL",
        "",
        _str,
        "override Graph's base URL (default: the cloud's, or the emulator's)",
        group=GRAPH,
    )
    authority_host: str = setting(
        "COMMSGW_AUTHORITY_HOST",
        "",
        _str,
        "override the token authority host (default: the cloud's, or the emulator's)",
        group=GRAPH,
    )
    ca_file: pathlib.Path | None = setting(
        "COMMSGW_CA_FILE",
        "",
        _path,
        "extra CA bundle to trust for Graph, the token authority and the callback signing keys "
        "(default: the emulator's CA in emulator mode)",
        group=GRAPH,
    )
    emulator_url: str = setting(
        "COMMSGW_EMULATOR_URL",
        "https://127.0.0.1:8443",
        _str,
        "the Graph emulator used when no Azure credentials are set",
        group=EMULATOR,
    )
    state_dir: pathlib.Path = setting(
        "COMMSGW_STATE_DIR",
        DEFAULT_STATE_DIR,
        _dir,
        "folder for local state (the emulator's certificate files)",
        group=EMULATOR,
    )
    # The emulator's timings (commsgw dev and commsgw emulator; seconds)
    media_op_seconds: float = setting(
        "COMMSGW_EMULATOR_MEDIA_OP_SECONDS",
        "1",
        _non_negative_float,
        "emulator: how long a prompt or a recording lasts (a call's promptS overrides it)",
        group=EMULATOR,
    )
    ring_seconds: float = setting(
        "COMMSGW_EMULATOR_RING_SECONDS",
        "1",
        _non_negative_float,
        "emulator: how long a callee's phone rings before they answer or decline",
        group=EMULATOR,
    )
    answer_window_seconds: float = setting(
        "COMMSGW_EMULATOR_ANSWER_WINDOW_SECONDS",
        "15",
        _positive_float,
        "emulator: an incoming call not answered, rejected or redirected by then is dropped",
        group=EMULATOR,
    )
    establish_delay_seconds: float = setting(
        "COMMSGW_EMULATOR_ESTABLISH_DELAY_SECONDS",
        "0",
        _non_negative_float,
        "emulator: each signalling step of a call (establishing, transfer, invite)",
        group=EMULATOR,
    )
    notification_delay_seconds: float = setting(
        "COMMSGW_EMULATOR_NOTIFICATION_DELAY_SECONDS",
        "0",
        _non_negative_float,
        "emulator: the wait before each notification is delivered",
        group=EMULATOR,
    )
    graph_timeout_s: float = setting(
        "COMMSGW_GRAPH_TIMEOUT_S",
        "10",
        _positive_float,
        "longest single Graph request (seconds); the caller's deadline cuts it shorter",
        group=GRAPH,
    )
    graph_max_attempts: int = setting(
        "COMMSGW_GRAPH_MAX_ATTEMPTS",
        "4",
        _positive_int,
        "attempts per Graph request for 429/503/504/connection errors",
        group=GRAPH,
    )
    retry_base_s: float = setting(
        "COMMSGW_RETRY_BASE_S",
        "0.5",
        _positive_float,
        "first backoff without Retry-After (doubles each attempt, full jitter)",
        group=GRAPH,
    )
    retry_max_s: float = setting(
        "COMMSGW_RETRY_MAX_S",
        "10",
        _positive_float,
        "longest wait between attempts, Retry-After included",
        group=GRAPH,
    )
    notification_openid_url: str = setting(
        "COMMSGW_NOTIFICATION_OPENID_URL",
        "",
        _str,
        "OpenID configuration whose keys sign Graph's callbacks (default: Microsoft's, or the "
        "emulator's)",
        group=WEBHOOK,
    )
    insecure_skip_notification_auth: bool = setting(
        "COMMSGW_INSECURE_SKIP_NOTIFICATION_AUTH",
        "false",
        _bool,
        "accept callbacks without validating their token (never in production)",
        group=WEBHOOK,
    )
    event_log: str = setting(
        "COMMSGW_EVENT_LOG",
        "memory",
        _str,
        "event log: memory; redis://HOST:PORT/DB (rediss://, unix://) to share one across "
        "replicas; sentinel for a primary found by COMMSGW_EVENT_LOG_SENTINELS",
        group=EVENT_LOG,
    )
    event_log_max_events: int = setting(
        "COMMSGW_EVENT_LOG_MAX_EVENTS",
        "100000",
        _positive_int,
        "events the log retains at most",
        group=EVENT_LOG,
    )
    event_log_max_age_s: float = setting(
        "COMMSGW_EVENT_LOG_MAX_AGE_S",
        "3600",
        _positive_float,
        "oldest event the log retains (seconds); also the duplicate window",
        group=EVENT_LOG,
    )
    event_log_key: str = setting(
        "COMMSGW_EVENT_LOG_KEY",
        "commsgw",
        _str,
        "key prefix of the Redis event log",
        group=EVENT_LOG,
    )
    subscriber_buffer: int = setting(
        "COMMSGW_SUBSCRIBER_BUFFER",
        "1024",
        _positive_int,
        "events buffered per subscriber before it is cut off as too slow",
        group=EVENT_LOG,
    )
    bookmark_interval_s: float = setting(
        "COMMSGW_BOOKMARK_INTERVAL_S",
        "30",
        _positive_float,
        "idle watch streams get a progress bookmark this often (seconds)",
        group=EVENT_LOG,
    )
    managed_keepalive: bool = setting(
        "COMMSGW_MANAGED_KEEPALIVE",
        "true",
        _bool,
        "send keepAlive for every established call seen, so that Graph does not end it after "
        "45 minutes (one replica per call and period when replicas share Redis)",
        group=KEEPALIVE,
    )
    keepalive_interval_s: float = setting(
        "COMMSGW_KEEPALIVE_INTERVAL_S",
        "900",
        _positive_float,
        "how often managed keepAlive is sent per call (seconds; Graph ends a call after 2700 "
        "without one)",
        group=KEEPALIVE,
    )
    reconcile_calls: bool = setting(
        "COMMSGW_RECONCILE_CALLS",
        "true",
        _bool,
        "report a call ended (one CallUpdate of origin GATEWAY to every subscriber) when Graph "
        "answers 404 for it while the gateway believes it alive, or when it passes Graph's "
        "keepAlive deadline with no sign of life",
        group=KEEPALIVE,
    )
    max_wait_s: float = setting(
        "COMMSGW_MAX_WAIT_S",
        "300",
        _positive_float,
        "longest WaitOperation without a deadline or timeout (seconds; at most 3600)",
        group=EVENT_LOG,
    )
    tone_reorder_window_s: float = setting(
        "COMMSGW_TONE_REORDER_WINDOW_S",
        "1.0",
        _positive_float,
        "longest a webhook POST with a call's DTMF tone waits for the tones before it, so that "
        "they are delivered in sequence order (seconds)",
        group=WEBHOOK,
    )
    allow_insecure_bind: bool = setting(
        "COMMSGW_ALLOW_INSECURE_BIND",
        "false",
        _bool,
        "allow a non-loopback address without TLS (and, for gRPC, without caller auth)",
        group=LISTENING,
    )
    reflection: bool = setting(
        "COMMSGW_REFLECTION", "true", _bool, "serve gRPC server reflection", group=LISTENING
    )
    webhook_rate: float = setting(
        "COMMSGW_WEBHOOK_RATE",
        "2000",
        _positive_float,
        "webhook POSTs per second per source address (429 beyond; burst of twice that)",
        group=WEBHOOK,
    )
    graph_concurrency: int = setting(
        "COMMSGW_GRAPH_CONCURRENCY",
        "256",
        _positive_int,
        "Graph requests in flight at most (a burst of cancels waits its turn)",
        group=GRAPH,
    )
    event_loop: str = setting(
        "COMMSGW_EVENT_LOOP",
        "uvloop",
        _loop,
        "uvloop (faster webhook and fan-out, measured in bench/) or asyncio",
        group=LISTENING,
    )
    graph_http_transport: str = setting(
        "COMMSGW_GRAPH_HTTP_TRANSPORT",
        "aiohttp",
        _transport,
        "HTTP client under the Graph client and the callback signing-key fetches: aiohttp (its "
        "client session; the fastest, bench/ graph_sender) or httpx (httpx's own pool)",
        group=GRAPH,
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

    def local_webhook_url(self, port: int | None = None) -> str:
        """The webhook as this machine reaches it (the HTTP address, a wildcard one as
        loopback; `port` when the one bound differs from the setting's, e.g. 0)."""
        host = self.http_addr.host
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self.http_tls_cert else "http"
        return f"{scheme}://{shown}:{port or self.http_addr.port}{self.webhook_path}"


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, *f.metadata[_SETTING])
    for f in dataclasses.fields(Settings)
    if _SETTING in f.metadata
)
