"""The `commsgw` command as a person uses it, against a live gateway and emulator."""

from __future__ import annotations

import argparse
import asyncio
import sys

import pytest

from commsgw.cli._main import _parser
from commsgw.server._gateway import Gateway
from helpers.emulator import GraphUser
from helpers.gateway import webhook_url
from helpers.ids import new_guid

pytestmark = pytest.mark.e2e


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "commsgw", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cancel_prints_the_operation(gateway: Gateway, graph_user: GraphUser) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    target = f"127.0.0.1:{gateway.grpc_port}"
    code, out, err = await run_cli("cancel", "--call-id", call_id, "--target", target)
    assert code == 0, err
    assert "OPERATION_STATUS_COMPLETED" in out
    assert f"/communications/calls/{call_id}/operations/" in out


async def test_cancel_error_is_one_line_with_reason_and_request_id(gateway: Gateway) -> None:
    target = f"127.0.0.1:{gateway.grpc_port}"
    code, _, err = await run_cli("cancel", "--call-id", new_guid(), "--target", target)
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "NOT_FOUND" in lines[0]
    assert "reason=ITEM_NOT_FOUND" in lines[0]
    assert "graph_request_id=" in lines[0]


def test_help_explains_every_flag() -> None:
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("serve", "dev", "cancel", "watch", "hash-token"):
        for action in sub.choices[name]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), f"{name} {action.option_strings}"
