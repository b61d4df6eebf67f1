"""`commsgw doctor` against the emulator and a running gateway: every check passes, and each
check fails, with its fix, when what it checks is broken."""

from __future__ import annotations

import json
import pathlib
import re
import time
from collections.abc import AsyncIterator

import pytest

from commsgw._config import Settings
from commsgw.cli._doctor import Finding, diagnose, uses_of
from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway
from commsgw.testing import free_port
from helpers.cli import run_cli
from helpers.emulator import running_emulator
from helpers.gateway import gateway_env, gateway_settings, running_gateway
from helpers.shared_redis import SHARED_REDIS, key_prefix

pytestmark = pytest.mark.e2e

CHECKS = [
    "token",
    "graph permissions",
    "webhook url",
    "webhook",
    "notification keys",
    "event log",
    "clock",
]


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def settings_for(emulator: Emulator, gateway: Gateway | None = None, **env: str) -> Settings:
    port = gateway.http_port if gateway is not None else free_port()
    return gateway_settings(emulator, COMMSGW_HTTP_ADDR=f"127.0.0.1:{port}", **env)


@pytest.fixture
async def redis_gateway(emulator: Emulator) -> AsyncIterator[tuple[Gateway, str]]:
    async with key_prefix("doctor") as prefix:
        settings = gateway_settings(
            emulator, COMMSGW_EVENT_LOG=SHARED_REDIS, COMMSGW_EVENT_LOG_KEY=prefix
        )
        async with running_gateway(settings) as gw:
            yield gw, prefix


async def test_the_command_passes_every_check_against_the_emulator_and_a_gateway(
    emulator: Emulator, redis_gateway: tuple[Gateway, str]
) -> None:
    gateway, prefix = redis_gateway
    env = gateway_env(
        emulator,
        COMMSGW_HTTP_ADDR=f"127.0.0.1:{gateway.http_port}",
        COMMSGW_EVENT_LOG=SHARED_REDIS,
        COMMSGW_EVENT_LOG_KEY=prefix,
    )
    result = await run_cli("doctor", env=env)
    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert [line.split(maxsplit=1)[0] for line in lines] == ["ok"] * len(CHECKS), result.out
    as_json = await run_cli("doctor", "--json", env=env)
    assert as_json.code == 0
    assert [f["check"] for f in json.loads(as_json.out)] == CHECKS


async def test_an_unknown_rpc_is_refused(emulator: Emulator) -> None:
    result = await run_cli("doctor", "--rpcs", "PlayPrompt,Nope", env=gateway_env(emulator))
    assert result.code == 2
    assert "'Nope' is not an RPC" in result.err


async def test_a_token_the_authority_refuses_fails_token_and_permissions(
    tmp_path: pathlib.Path,
) -> None:
    async with running_emulator(tmp_path / "emu", client_secret="another-secret") as emu:
        found = by_check(await diagnose(settings_for(emu), uses_of("")))
    assert not found["token"].ok and "refused" in found["token"].detail
    assert "AZURE_CLIENT_ID" in found["token"].fix or "emulator" in found["token"].fix
    assert not found["graph permissions"].ok


async def test_missing_roles_name_the_rpcs_they_break(tmp_path: pathlib.Path) -> None:
    roles = ("Calls.Initiate.All", "Calls.AccessMedia.All")
    async with running_emulator(tmp_path / "emu", app_roles=roles) as emu:
        found = by_check(await diagnose(settings_for(emu), uses_of("")))
        narrow = by_check(await diagnose(settings_for(emu), uses_of("PlayPrompt,RecordResponse")))
    assert found["token"].ok
    perms = found["graph permissions"]
    assert not perms.ok
    assert "no Calls.InitiateGroupCall.All: CreateCall (group call), InviteParticipants" in (
        perms.detail
    )
    assert "no Calls.JoinGroupCall.All: CreateCall (join a meeting), AnswerCall" in perms.detail
    assert "PlayPrompt" not in perms.detail
    assert "admin consent" in perms.fix
    assert narrow["graph permissions"].ok  # the RPCs in use are covered


async def test_no_gateway_behind_the_webhook_url_fails_the_webhook(emulator: Emulator) -> None:
    found = by_check(await diagnose(settings_for(emulator), uses_of("")))
    assert found["webhook url"].ok
    assert not found["webhook"].ok and "cannot be reached" in found["webhook"].detail


async def test_a_webhook_url_that_is_not_a_gateway_fails(emulator: Emulator) -> None:
    url = f"{emulator.base_url}/api/calls"  # https, answered by the emulator, not a gateway
    settings = settings_for(emulator, COMMSGW_PUBLIC_WEBHOOK_URL=url)
    found = by_check(await diagnose(settings, uses_of("")))
    assert found["webhook url"].ok
    assert not found["webhook"].ok and "not as a commsgw webhook" in found["webhook"].detail


async def test_unreachable_signing_keys_fail(emulator: Emulator, gateway: Gateway) -> None:
    settings = settings_for(
        emulator,
        gateway,
        COMMSGW_NOTIFICATION_OPENID_URL=f"{emulator.base_url}/v1/.well-known/nothing-here",
    )
    found = by_check(await diagnose(settings, uses_of("")))
    assert found["webhook"].ok
    assert not found["notification keys"].ok
    assert "COMMSGW_NOTIFICATION_OPENID_URL" in found["notification keys"].fix


async def test_an_event_log_that_takes_no_write_fails(emulator: Emulator, gateway: Gateway) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    found = by_check(await diagnose(settings_for(emulator, gateway, COMMSGW_EVENT_LOG=closed), []))
    assert not found["event log"].ok and closed in found["event log"].detail


async def test_a_clock_beyond_the_leeway_fails(emulator: Emulator, gateway: Gateway) -> None:
    settings = settings_for(emulator, gateway)
    found = by_check(await diagnose(settings, [], clock=lambda: time.time() + 300))
    assert not found["clock"].ok
    assert re.match(r"\+30[01] s off", found["clock"].detail)  # the Date header has 1 s steps
    assert by_check(await diagnose(settings, []))["clock"].ok
