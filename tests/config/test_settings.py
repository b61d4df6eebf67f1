"""Settings: clouds, emulator mode, validation that names the setting, no secret in repr."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from commsgw._config import add_arguments, from_sources
from commsgw._errors import ConfigError

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"
AZURE = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": "s3cr3t"}


def test_defaults_are_emulator_mode() -> None:
    s = from_sources({})
    assert s.emulator_mode
    assert str(s.grpc_addr) == "127.0.0.1:50051"
    assert str(s.http_addr) == "127.0.0.1:8080"
    assert s.graph_url == "https://127.0.0.1:8443"
    assert s.webhook_path == "/api/calls"


@pytest.mark.parametrize(
    ("cloud", "graph", "authority"),
    [
        ("global", "https://graph.microsoft.com", "https://login.microsoftonline.com"),
        ("usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us"),
        ("dod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"),
    ],
)
def test_national_clouds(cloud: str, graph: str, authority: str) -> None:
    s = from_sources({**AZURE, "COMMSGW_CLOUD": cloud})
    assert not s.emulator_mode
    assert s.graph_url == graph
    assert s.authority_host == authority
    assert s.scope == f"{graph}/.default"
    assert s.graph_v1_url == f"{graph}/v1.0"


def test_china_is_refused_with_reason() -> None:
    with pytest.raises(ConfigError, match=r"COMMSGW_CLOUD=china.*not offered"):
        from_sources({**AZURE, "COMMSGW_CLOUD": "china"})


def test_china_refused_by_the_command_at_start_up() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "commsgw", "serve", "--cloud", "china"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **AZURE},
    )
    assert proc.returncode == 2
    assert "not offered in the China cloud" in proc.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"COMMSGW_GRPC_ADDR": "nope"}, "COMMSGW_GRPC_ADDR"),
        ({"COMMSGW_GRAPH_TIMEOUT_S": "-1"}, "COMMSGW_GRAPH_TIMEOUT_S"),
        ({"COMMSGW_CLOUD": "mars"}, "COMMSGW_CLOUD"),
        ({**AZURE, "AZURE_TENANT_ID": "contoso"}, "AZURE_TENANT_ID"),
        ({"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT}, "AZURE_CLIENT_SECRET"),
        ({"COMMSGW_EVENT_LOG": "kafka://x"}, "COMMSGW_EVENT_LOG"),
        ({"COMMSGW_EVENT_LOG": "sentinel"}, "COMMSGW_EVENT_LOG_SENTINELS"),
        ({"COMMSGW_EVENT_LOG_SENTINELS": "host-without-port"}, "COMMSGW_EVENT_LOG_SENTINELS"),
        ({"COMMSGW_EVENT_LOG_CLUSTER": "true"}, "COMMSGW_EVENT_LOG_CLUSTER"),
        (
            {
                "COMMSGW_EVENT_LOG": "redis://node:6379/0",
                "COMMSGW_EVENT_LOG_CLUSTER": "true",
                "COMMSGW_EVENT_LOG_MIN_REPLICAS": "1",
            },
            "COMMSGW_EVENT_LOG_MIN_REPLICAS",
        ),
        ({"COMMSGW_EVENT_LOG_MIN_REPLICAS": "-1"}, "COMMSGW_EVENT_LOG_MIN_REPLICAS"),
        ({"COMMSGW_EVENT_LOG_REPLICA_TIMEOUT_S": "0"}, "COMMSGW_EVENT_LOG_REPLICA_TIMEOUT_S"),
        ({"COMMSGW_EXTRA_TENANTS": "a,b"}, "COMMSGW_EXTRA_TENANTS"),
        ({"COMMSGW_EMULATOR_URL": "http://127.0.0.1:8443"}, "COMMSGW_EMULATOR_URL"),
        ({"COMMSGW_INSECURE_SKIP_NOTIFICATION_AUTH": "maybe"}, "COMMSGW_INSECURE_SKIP"),
    ],
)
def test_invalid_settings_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        from_sources(env)


def test_flag_wins_over_environment() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--grpc-addr", "127.0.0.1:6000"])
    s = from_sources({"COMMSGW_GRPC_ADDR": "127.0.0.1:7000"}, args)
    assert s.grpc_addr.port == 6000


def test_secrets_never_in_repr() -> None:
    s = from_sources(AZURE)
    assert "s3cr3t" not in repr(s)


def test_tenants_include_extra() -> None:
    extra = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    s = from_sources({**AZURE, "COMMSGW_EXTRA_TENANTS": extra.upper()})
    assert s.tenants == (TENANT, extra)


def test_redis_deployments_become_targets() -> None:
    from commsgw.eventlog import redis_target
    from commsgw.server import part_configs

    s = from_sources(
        {
            "COMMSGW_EVENT_LOG": "sentinel",
            "COMMSGW_EVENT_LOG_SENTINELS": "s1:26379, s2:26380",
            "COMMSGW_EVENT_LOG_SENTINEL_SERVICE": "calls",
            "COMMSGW_EVENT_LOG_MIN_REPLICAS": "1",
        }
    )
    t = redis_target(part_configs(s).event_log)
    assert (t.sentinels, t.service, t.url) == ((("s1", 26379), ("s2", 26380)), "calls", "")
    assert s.event_log_min_replicas == 1
    c = redis_target(
        part_configs(
            from_sources(
                {"COMMSGW_EVENT_LOG": "redis://n:7000/0", "COMMSGW_EVENT_LOG_CLUSTER": "1"}
            )
        ).event_log
    )
    assert (c.url, c.cluster) == ("redis://n:7000/0", True)


@pytest.mark.parametrize(
    ("addr", "port", "url"),
    [
        ("127.0.0.1:8080", None, "http://127.0.0.1:8080/api/calls"),
        ("0.0.0.0:8080", None, "http://127.0.0.1:8080/api/calls"),
        ("[::1]:0", 41234, "http://[::1]:41234/api/calls"),
    ],
)
def test_the_local_webhook_url_is_reachable_from_this_machine(
    addr: str, port: int | None, url: str
) -> None:
    env = {"COMMSGW_HTTP_ADDR": addr, "COMMSGW_ALLOW_INSECURE_BIND": "true"}
    assert from_sources(env).local_webhook_url(port) == url
