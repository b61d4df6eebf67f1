"""Managed keepAlive through real gateways on the emulator (whose calls end after a short
keepAlive expiry here): calls seen established are kept alive, ended calls are let go, 404
stops it, and replicas sharing Redis send one keepAlive per call per period and take over from
one another."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from commsgw.emulator import Emulator, Fault
from commsgw.server import Gateway
from helpers.emulator import GraphUser, running_emulator
from helpers.gateway import gateway_settings, running_gateway, webhook_url
from helpers.metrics import metric
from helpers.polling import eventually
from helpers.shared_redis import SHARED_REDIS, key_prefix

pytestmark = pytest.mark.e2e

KEEPALIVE = r"/keepAlive$"
EXPIRY_S = 1.5
INTERVAL_S = "0.3"


@pytest.fixture
async def emu(tmp_path: pathlib.Path) -> AsyncIterator[Emulator]:
    async with running_emulator(tmp_path / "emulator", keepalive_expiry_s=EXPIRY_S) as e:
        yield e


@pytest.fixture
async def user(emu: Emulator) -> AsyncIterator[GraphUser]:
    u = GraphUser(emu)
    try:
        yield u
    finally:
        await u.aclose()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with key_prefix("keepalive") as p:
        yield p


def sent(emu: Emulator, call_id: str) -> int:
    return len(emu.requests_to(rf"/calls/{call_id}/keepAlive$", "POST"))


def outcome(gw: Gateway, name: str) -> float:
    return metric(gw.metrics.render().decode(), "commsgw_keepalives_total", outcome=name)


async def test_an_established_call_outlives_graphs_expiry(emu: Emulator, user: GraphUser) -> None:
    settings = gateway_settings(emu, COMMSGW_KEEPALIVE_INTERVAL_S=INTERVAL_S)
    async with running_gateway(settings) as gw:
        call_id = await user.create_call(webhook_url(gw))
        created = emu.calls[call_id]
        # Several keepAlives in a row, over more than the emulator's expiry: the call lives on.
        await eventually(lambda: sent(emu, call_id) >= 8, what="8 keepAlives sent", timeout=15)
        assert emu.calls[call_id].alive
        assert created is emu.calls[call_id]
        # the gateway counts a keepAlive once Graph's answer reaches it, after the emulator
        # has journaled the request
        await eventually(lambda: outcome(gw, "sent") >= 8, what="8 keepAlives counted", timeout=5)
        # The call ends: the gateway lets it go.
        await user.http.delete(
            f"/communications/calls/{call_id}", headers=user._headers()
        )  # fmt: skip
        await eventually(lambda: call_id not in gw.keepalive.due, what="the ended call let go")


async def test_without_managed_keepalive_graph_ends_the_call(
    emu: Emulator, user: GraphUser
) -> None:
    settings = gateway_settings(emu, COMMSGW_MANAGED_KEEPALIVE="false")
    async with running_gateway(settings) as gw:
        assert gw.keepalive is None
        call_id = await user.create_call(webhook_url(gw))
        await eventually(
            lambda: not emu.calls[call_id].alive, what="the call ended by Graph", timeout=10
        )
        assert sent(emu, call_id) == 0


async def test_a_404_stops_the_keepalive_of_that_call(emu: Emulator, user: GraphUser) -> None:
    settings = gateway_settings(emu, COMMSGW_KEEPALIVE_INTERVAL_S=INTERVAL_S)
    async with running_gateway(settings) as gw:
        call_id = await user.create_call(webhook_url(gw))
        await eventually(lambda: call_id in gw.keepalive.due, what="the call kept alive")
        emu.faults.add(
            Fault(path_pattern=KEEPALIVE, status=404, error_code="itemNotFound", count=-1)
        )
        await eventually(lambda: call_id not in gw.keepalive.due, what="the call let go")
        assert outcome(gw, "gone") == 1


async def test_replicas_send_one_keepalive_per_call_per_period(
    emu: Emulator, user: GraphUser, prefix: str
) -> None:
    env = {
        "COMMSGW_KEEPALIVE_INTERVAL_S": "0.5",
        "COMMSGW_EVENT_LOG": SHARED_REDIS,
        "COMMSGW_EVENT_LOG_KEY": prefix,
    }
    async with (
        running_gateway(gateway_settings(emu, **env)) as a,
        running_gateway(gateway_settings(emu, **env)) as b,
    ):
        call_id = await user.create_call(webhook_url(a))
        await eventually(
            lambda: call_id in a.keepalive.due and call_id in b.keepalive.due,
            what="both replicas track the call",
        )
        await eventually(lambda: sent(emu, call_id) >= 6, what="6 keepAlives", timeout=15)
        # Every keepAlive Graph received is one the replicas counted as sent. The emulator
        # journals a request before its answer reaches the replica, so the two agree once no
        # keepAlive is in flight (one goes out every 0.5 s): wait for such a moment.
        await eventually(
            lambda: outcome(a, "sent") + outcome(b, "sent") == sent(emu, call_id),
            what="the replicas' sent keepAlives match those Graph received",
        )
        # Periods of 0.5 s: both replicas try every period, the lease lets one through.
        tries = outcome(a, "sent") + outcome(b, "sent") + outcome(a, "skipped")
        tries += outcome(b, "skipped")
        assert outcome(a, "skipped") + outcome(b, "skipped") >= 2
        assert sent(emu, call_id) <= tries / 2 + 2, "more than one keepAlive per period"
        assert emu.calls[call_id].alive


async def test_a_replica_that_never_saw_the_call_takes_it_over(
    emu: Emulator, user: GraphUser, prefix: str
) -> None:
    env = {
        "COMMSGW_KEEPALIVE_INTERVAL_S": INTERVAL_S,
        "COMMSGW_EVENT_LOG": SHARED_REDIS,
        "COMMSGW_EVENT_LOG_KEY": prefix,
    }
    async with running_gateway(gateway_settings(emu, **env)) as a:
        call_id = await user.create_call(webhook_url(a))
        await eventually(lambda: sent(emu, call_id) >= 2, what="A keeps the call alive")
    # A is gone. B starts after the call was established: it learns the call from Redis.
    before = sent(emu, call_id)
    async with running_gateway(gateway_settings(emu, **env)) as b:
        assert call_id in b.keepalive.due
        await eventually(lambda: sent(emu, call_id) >= before + 6, what="B sends", timeout=15)
        assert outcome(b, "sent") >= 6
        assert emu.calls[call_id].alive
