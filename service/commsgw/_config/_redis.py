"""The settings of where the Redis event log lives (one Redis, Sentinel or a Cluster) and how
many replicas must hold a notification before it is acknowledged (the rest of `Settings` is in
`_settings` and `_serving`)."""

from __future__ import annotations

from dataclasses import dataclass

from commsgw._config._declare import EVENT_LOG, setting
from commsgw._config._serving import ServingSettings
from commsgw._config._values import Address, _address, _bool, _positive_float, _str


def _address_list(raw: str) -> tuple[Address, ...]:
    return tuple(_address(a.strip()) for a in raw.split(",") if a.strip())


def _non_negative_int(raw: str) -> int:
    v = int(raw)
    if v < 0:
        raise ValueError("must be 0 or more")
    return v


@dataclass(frozen=True, slots=True)
class RedisSettings(ServingSettings):
    """Redis Sentinel, Redis Cluster and replica acknowledgement: a base of `Settings`."""

    event_log_sentinels: tuple[Address, ...] = setting(
        "COMMSGW_EVENT_LOG_SENTINELS",
        "",
        _address_list,
        "with COMMSGW_EVENT_LOG=sentinel: the Sentinels, HOST:PORT,HOST:PORT,... (the primary "
        "is asked of them, and asked again after a failover)",
        group=EVENT_LOG,
    )
    event_log_sentinel_service: str = setting(
        "COMMSGW_EVENT_LOG_SENTINEL_SERVICE",
        "mymaster",
        _str,
        "with COMMSGW_EVENT_LOG=sentinel: the name the Sentinels monitor the primary under",
        group=EVENT_LOG,
    )
    event_log_cluster: bool = setting(
        "COMMSGW_EVENT_LOG_CLUSTER",
        "false",
        _bool,
        "COMMSGW_EVENT_LOG's URL is a node of a Redis Cluster; the key prefix is then one hash "
        "tag ({commsgw}) so that every key of the log is in one slot",
        group=EVENT_LOG,
    )
    event_log_min_replicas: int = setting(
        "COMMSGW_EVENT_LOG_MIN_REPLICAS",
        "0",
        _non_negative_int,
        "a notification is answered 202 only once this many Redis replicas hold it (WAIT); "
        "0: once the primary does",
        group=EVENT_LOG,
    )
    event_log_replica_timeout_s: float = setting(
        "COMMSGW_EVENT_LOG_REPLICA_TIMEOUT_S",
        "1",
        _positive_float,
        "how long a notification waits for COMMSGW_EVENT_LOG_MIN_REPLICAS replicas before it "
        "is answered 503 (Graph redelivers it)",
        group=EVENT_LOG,
    )
