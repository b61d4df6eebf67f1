"""Validating settings and filling what follows from them (emulator mode, a cloud's endpoints,
the tenants callers may name). Every refusal is a ConfigError that names the setting."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from commsgw._config._clouds import (
    CLOUDS,
    EMULATOR_CA_FILE,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EMULATOR_TENANT_ID,
    UNSUPPORTED_CLOUDS,
)
from commsgw._config._settings import Settings
from commsgw._errors import ConfigError
from commsgw._ids import normalize_guid

# Graph ends a call that got no keepAlive for 45 minutes (call: keepAlive, Graph v1.0).
KEEPALIVE_LIMIT_S = 2700.0


def resolve(s: Settings) -> Settings:
    """`s` validated, with its derived fields filled."""
    cloud = s.cloud.strip().lower()
    if cloud in UNSUPPORTED_CLOUDS:
        raise ConfigError(f"COMMSGW_CLOUD={cloud}: {UNSUPPORTED_CLOUDS[cloud]}")
    if cloud not in CLOUDS:
        raise ConfigError(
            f"COMMSGW_CLOUD={s.cloud!r} is not a cloud; use one of {', '.join(CLOUDS)}"
        )
    emulator = not (s.tenant_id or s.client_id)
    tenant, client, secret = s.tenant_id, s.client_id, s.client_secret
    graph_url, authority, openid = (
        s.graph_url,
        s.authority_host,
        s.notification_openid_url,
    )
    ca_file = s.ca_file
    if emulator:
        if s.client_secret or s.client_certificate_path:
            raise ConfigError(
                "AZURE_CLIENT_SECRET/AZURE_CLIENT_CERTIFICATE_PATH are set but "
                "AZURE_TENANT_ID and AZURE_CLIENT_ID are not"
            )
        _check_https("COMMSGW_EMULATOR_URL", s.emulator_url)
        base = s.emulator_url.rstrip("/")
        tenant, client, secret = EMULATOR_TENANT_ID, EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET
        graph_url = graph_url or base
        authority = authority or base
        openid = openid or f"{base}/v1/.well-known/OpenIdConfiguration"
        if ca_file is None:
            ca_file = s.state_dir / EMULATOR_CA_FILE
    else:
        c = CLOUDS[cloud]
        if normalize_guid(tenant) is None:
            raise ConfigError(f"AZURE_TENANT_ID={tenant!r} is not a tenant GUID")
        if normalize_guid(client) is None:
            raise ConfigError(f"AZURE_CLIENT_ID={client!r} is not an application GUID")
        if not secret and s.client_certificate_path is None:
            raise ConfigError(
                f"set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH for the app {client}"
            )
        if secret and s.client_certificate_path is not None:
            raise ConfigError(
                "set only one of AZURE_CLIENT_SECRET and AZURE_CLIENT_CERTIFICATE_PATH"
            )
        if s.client_certificate_path is not None and not (s.client_certificate_path.is_file()):
            raise ConfigError(
                f"AZURE_CLIENT_CERTIFICATE_PATH={s.client_certificate_path}: no such file"
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
    tenants = (tenant_norm, *(t for t in s.extra_tenants if t != tenant_norm))
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"COMMSGW_LOG_LEVEL={s.log_level!r}: use DEBUG, INFO, ...")
    _check_event_log(s)
    if s.retry_max_s < s.retry_base_s:
        raise ConfigError("COMMSGW_RETRY_MAX_S must not be smaller than COMMSGW_RETRY_BASE_S")
    if not s.webhook_path.startswith("/"):
        raise ConfigError(f"COMMSGW_WEBHOOK_PATH={s.webhook_path!r} must start with /")
    if s.public_webhook_url:
        # Graph calls back over https only; the emulator also takes the local http webhook.
        url = urlsplit(s.public_webhook_url)
        if not url.hostname or url.scheme not in (("https", "http") if emulator else ("https",)):
            raise ConfigError(
                f"COMMSGW_PUBLIC_WEBHOOK_URL={s.public_webhook_url!r} must be an https:// URL"
            )
    if s.keepalive_interval_s > KEEPALIVE_LIMIT_S / 2:
        # A replica that dies holding a period's lease costs one period: two must fit in the
        # 45 minutes after which Graph ends a call without keepAlive.
        raise ConfigError(
            f"COMMSGW_KEEPALIVE_INTERVAL_S={s.keepalive_interval_s}: at most "
            f"{KEEPALIVE_LIMIT_S / 2:.0f} (Graph ends a call after {KEEPALIVE_LIMIT_S:.0f} s "
            "without keepAlive)"
        )
    if s.max_wait_s > 3600:
        raise ConfigError(f"COMMSGW_MAX_WAIT_S={s.max_wait_s}: at most 3600")
    if s.log_format not in ("json", "text"):
        raise ConfigError(f"COMMSGW_LOG_FORMAT={s.log_format!r}: use json or text")
    for prefix, cert, key in (
        ("COMMSGW_GRPC_TLS", s.grpc_tls_cert, s.grpc_tls_key),
        ("COMMSGW_HTTP_TLS", s.http_tls_cert, s.http_tls_key),
    ):
        if (cert is None) != (key is None):
            raise ConfigError(f"set both {prefix}_CERT and {prefix}_KEY, or neither")
    for env, path in (
        ("COMMSGW_GRPC_TLS_CERT", s.grpc_tls_cert),
        ("COMMSGW_GRPC_TLS_KEY", s.grpc_tls_key),
        ("COMMSGW_GRPC_CLIENT_CA", s.grpc_client_ca),
        ("COMMSGW_HTTP_TLS_CERT", s.http_tls_cert),
        ("COMMSGW_HTTP_TLS_KEY", s.http_tls_key),
        ("COMMSGW_CALLERS_FILE", s.callers_file),
    ):
        if path is not None and not path.is_file():
            raise ConfigError(f"{env}={path}: no such file")
    if s.grpc_client_ca is not None and s.grpc_tls_cert is None:
        raise ConfigError("COMMSGW_GRPC_CLIENT_CA needs COMMSGW_GRPC_TLS_CERT/KEY")
    if not s.allow_insecure_bind:
        grpc_secure = s.grpc_tls_cert is not None and (
            s.grpc_client_ca is not None or s.callers_file is not None
        )
        if not s.grpc_addr.is_loopback and not grpc_secure:
            raise ConfigError(
                f"COMMSGW_GRPC_ADDR={s.grpc_addr} is not loopback: set "
                "COMMSGW_GRPC_TLS_CERT/KEY with COMMSGW_CALLERS_FILE or "
                "COMMSGW_GRPC_CLIENT_CA, or COMMSGW_ALLOW_INSECURE_BIND=true"
            )
        if not s.http_addr.is_loopback and s.http_tls_cert is None:
            raise ConfigError(
                f"COMMSGW_HTTP_ADDR={s.http_addr} is not loopback: set "
                "COMMSGW_HTTP_TLS_CERT/KEY, or COMMSGW_ALLOW_INSECURE_BIND=true behind a "
                "TLS-terminating proxy"
            )
    return dataclasses.replace(
        s,
        cloud=cloud,
        tenant_id=tenant_norm,
        client_id=client.lower(),
        client_secret=secret,
        graph_url=graph_url.rstrip("/"),
        authority_host=authority.rstrip("/"),
        notification_openid_url=openid,
        ca_file=ca_file,
        log_level=s.log_level.upper(),
        emulator_mode=emulator,
        tenants=tenants,
    )


def _check_event_log(s: Settings) -> None:
    url = s.event_log.startswith(("redis://", "rediss://", "unix://"))
    if s.event_log not in ("memory", "sentinel") and not url:
        raise ConfigError(
            f"COMMSGW_EVENT_LOG={s.event_log!r}: use memory, a redis:// URL or sentinel"
        )
    if s.event_log == "sentinel" and not s.event_log_sentinels:
        raise ConfigError("COMMSGW_EVENT_LOG=sentinel needs COMMSGW_EVENT_LOG_SENTINELS")
    if s.event_log_cluster and not url:
        raise ConfigError("COMMSGW_EVENT_LOG_CLUSTER needs a redis:// URL of a cluster node")
    if s.event_log_cluster and s.event_log_min_replicas:
        # WAIT counts the replicas of the writes of its own connection, and has no key: a
        # cluster pipeline would send it to any node, not the one that holds the log.
        raise ConfigError("COMMSGW_EVENT_LOG_MIN_REPLICAS needs one Redis or Sentinel, not Cluster")


def _check_https(env: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"{env}={url!r} must be an https:// URL")
