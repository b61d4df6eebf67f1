"""A gateway for a test: its settings against the emulator, in this event loop or as a process
of its own, its webhook URL and its memory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from commsgw._config import Settings, from_sources
from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway


def gateway_env(emulator: Emulator, **overrides: str) -> dict[str, str]:
    env = {
        "COMMSGW_GRPC_ADDR": "127.0.0.1:0",
        "COMMSGW_HTTP_ADDR": "127.0.0.1:0",
        "COMMSGW_EMULATOR_URL": emulator.base_url,
        "COMMSGW_CA_FILE": str(emulator.ca_path),
        "COMMSGW_RETRY_BASE_S": "0.02",
        "COMMSGW_RETRY_MAX_S": "2",
        "COMMSGW_GRAPH_TIMEOUT_S": "5",
        "COMMSGW_BOOKMARK_INTERVAL_S": "5",
    }
    env.update(overrides)
    return env


def gateway_settings(emulator: Emulator, **overrides: str) -> Settings:
    return from_sources(gateway_env(emulator, **overrides))


def process_env(emulator: Emulator, **overrides: str) -> dict[str, str]:
    """The environment of a gateway process (commsgw.testing.GatewayProcess picks its ports)."""
    env = gateway_env(emulator, **overrides)
    env.pop("COMMSGW_GRPC_ADDR")
    env.pop("COMMSGW_HTTP_ADDR")
    return env


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """An in-process gateway on port 0, stopped at the end."""
    gw = Gateway(settings)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop(0)


def webhook_url(gateway: Gateway) -> str:
    return f"http://127.0.0.1:{gateway.http_port}{gateway.settings.webhook_path}"


def rss_kb(pid: int) -> int:
    """The resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
