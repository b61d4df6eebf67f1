"""Each part's configuration, derived from the settings in one place (the composition root).

No part takes the whole `Settings`: each declares the small frozen configuration it needs in its
own package (`GraphClientConfig`, `TokenConfig`, `TransportConfig`, `RequestConfig`,
`EventLogConfig`, `KeepAliveConfig`, `ServicerConfig`, `GrpcConfig`, `HttpConfig`), and this
module is the only one that reads settings to fill them in.
"""

from __future__ import annotations

from dataclasses import dataclass

from commsgw._config import Settings
from commsgw.eventlog import EventLogConfig
from commsgw.graph import GraphClientConfig, RequestConfig, TokenConfig, TransportConfig
from commsgw.keepalive import KeepAliveConfig
from commsgw.server._grpc import GrpcConfig
from commsgw.server._http import HttpConfig
from commsgw.server._servicer import ServicerConfig


@dataclass(frozen=True, slots=True)
class PartConfigs:
    """Every part's configuration, as one gateway process builds its parts."""

    transport: TransportConfig
    tokens: TokenConfig
    graph: GraphClientConfig
    event_log: EventLogConfig
    http: HttpConfig
    grpc: GrpcConfig
    servicer: ServicerConfig
    keepalive: KeepAliveConfig


def transport_config(s: Settings) -> TransportConfig:
    return TransportConfig(
        ca_file=s.ca_file,
        kind=s.graph_http_transport,
        timeout_s=s.graph_timeout_s,
        emulator_mode=s.emulator_mode,
    )


def token_config(s: Settings) -> TokenConfig:
    return TokenConfig(
        tenant_id=s.tenant_id,
        client_id=s.client_id,
        authority_host=s.authority_host,
        scope=s.scope,
        client_secret=s.client_secret,
        certificate_path=s.client_certificate_path,
        certificate_password=s.client_certificate_password,
        timeout_s=s.graph_timeout_s,
    )


def event_log_config(s: Settings) -> EventLogConfig:
    return EventLogConfig(
        url=s.event_log,
        key=s.event_log_key,
        max_events=s.event_log_max_events,
        max_age_s=s.event_log_max_age_s,
        sentinels=s.event_log_sentinels,
        sentinel_service=s.event_log_sentinel_service,
        cluster=s.event_log_cluster,
        min_replicas=s.event_log_min_replicas,
        replica_timeout_s=s.event_log_replica_timeout_s,
    )


def request_config(s: Settings, *, http_port: int | None = None) -> RequestConfig:
    """How actions are written. In emulator mode without COMMSGW_PUBLIC_WEBHOOK_URL, the
    default callbackUri is the local webhook on `http_port` (the port bound, when the setting
    asks for 0)."""
    url = s.public_webhook_url
    if not url and s.emulator_mode:
        url = s.local_webhook_url(http_port)
    return RequestConfig(tenant_id=s.tenant_id, tenants=s.tenants, public_webhook_url=url)


def part_configs(s: Settings, *, http_port: int | None = None) -> PartConfigs:
    """Every part's configuration; `http_port` is the HTTP port bound (see `request_config`)."""
    requests = request_config(s, http_port=http_port)
    return PartConfigs(
        transport=transport_config(s),
        tokens=token_config(s),
        graph=GraphClientConfig(
            v1_url=s.graph_v1_url,
            timeout_s=s.graph_timeout_s,
            max_attempts=s.graph_max_attempts,
            retry_base_s=s.retry_base_s,
            retry_max_s=s.retry_max_s,
            concurrency=s.graph_concurrency,
        ),
        event_log=event_log_config(s),
        http=HttpConfig(addr=s.http_addr, tls_cert=s.http_tls_cert, tls_key=s.http_tls_key),
        grpc=GrpcConfig(
            addr=s.grpc_addr,
            tls_cert=s.grpc_tls_cert,
            tls_key=s.grpc_tls_key,
            client_ca=s.grpc_client_ca,
            keepalive_time_s=s.keepalive_time_s,
            keepalive_timeout_s=s.keepalive_timeout_s,
            max_connection_age_s=s.max_connection_age_s,
            max_connection_age_grace_s=s.max_connection_age_grace_s,
            max_message_bytes=s.max_message_bytes,
            max_streams=s.max_streams,
            reflection=s.reflection,
        ),
        servicer=ServicerConfig(
            requests=requests,
            cloud=s.cloud,
            max_wait_s=s.max_wait_s,
            bookmark_interval_s=s.bookmark_interval_s,
        ),
        keepalive=KeepAliveConfig(
            requests=requests,
            interval_s=s.keepalive_interval_s,
            request_timeout_s=s.graph_timeout_s,
        ),
    )
