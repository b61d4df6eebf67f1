"""The `commsgw` command as a person meets it first, as processes: `--help`, `--version`,
`hash-token`, where client commands find the gateway, the values they refuse, and `cancel`
against a live gateway and emulator."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from commsgw.cli._main import _parser
from commsgw.emulator._cli import _parser as emulator_parser
from commsgw.server._callers import hash_token
from commsgw.server._gateway import Gateway
from commsgw.testing import free_port
from helpers.cli import run_cli
from helpers.emulator import GraphUser
from helpers.gateway import webhook_url
from helpers.ids import new_guid

pytestmark = pytest.mark.e2e


def _target(gateway: Gateway) -> str:
    return f"127.0.0.1:{gateway.grpc_port}"


async def test_cancel_prints_the_operation(gateway: Gateway, graph_user: GraphUser) -> None:
    call_id = await graph_user.create_call(webhook_url(gateway))
    res = await run_cli("cancel", "--call-id", call_id, "--target", _target(gateway))
    assert res.code == 0, res.err
    assert "OPERATION_STATUS_COMPLETED" in res.out
    assert f"/communications/calls/{call_id}/operations/" in res.out


async def test_cancel_error_is_one_line_with_reason_and_request_id(gateway: Gateway) -> None:
    res = await run_cli("cancel", "--call-id", new_guid(), "--target", _target(gateway))
    assert res.code == 1
    assert len(res.err_lines) == 1, res.err
    line = res.err_lines[0]
    assert line.startswith("error: NOT_FOUND: ")
    assert "reason=ITEM_NOT_FOUND" in line
    assert "graph_request_id=" in line


async def test_errors_honour_json(gateway: Gateway) -> None:
    res = await run_cli("cancel", "--call-id", new_guid(), "--target", _target(gateway), "--json")
    assert res.code == 1 and res.out == ""
    assert len(res.err_lines) == 1, res.err
    error = json.loads(res.err_lines[0])["error"]
    assert error["code"] == "NOT_FOUND"
    assert error["reason"] == "ITEM_NOT_FOUND"
    assert error["graph_request_id"] and error["metadata"]["http_status"] == "404"


async def test_a_tenant_id_that_is_not_a_guid_is_named_so(gateway: Gateway) -> None:
    args = ("cancel", "--call-id", new_guid(), "--tenant-id", "not-a-guid")
    res = await run_cli(*args, "--target", _target(gateway))
    assert res.code == 1
    assert len(res.err_lines) == 1, res.err
    assert "tenant_id 'not-a-guid' is not a GUID" in res.err_lines[0]
    assert "reason=UNKNOWN_TENANT" in res.err_lines[0]
    res = await run_cli(*args, "--target", _target(gateway), "--json")
    error = json.loads(res.err)["error"]
    assert error["code"] == "INVALID_ARGUMENT" and "is not a GUID" in error["message"]
    # A GUID the gateway is not configured for is another message.
    res = await run_cli("cancel", "--call-id", new_guid(), "--tenant-id", new_guid(),
                        "--target", _target(gateway))  # fmt: skip
    assert res.code == 1 and "not a tenant this gateway is configured for" in res.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--timeout", "0"], "argument --timeout: '0': must be more than 0 seconds"),
        (["--timeout", "-1"], "argument --timeout: '-1': must be more than 0 seconds"),
        (["--timeout", "soon"], "argument --timeout: 'soon' is not a number of seconds"),
        (["--client-request-id", "abc"], "argument --client-request-id: 'abc' is not a GUID"),
    ],
)
async def test_bad_values_exit_2_with_argparse_message(flags: list[str], message: str) -> None:
    # Refused before anything is sent: the target does not even exist.
    target = f"127.0.0.1:{free_port()}"
    res = await run_cli("cancel", "--call-id", new_guid(), "--target", target, *flags)
    assert res.code == 2
    assert res.err_lines[-1] == f"commsgw cancel: error: {message}", res.err


async def test_clients_find_the_gateway_at_commsgw_target(gateway: Gateway) -> None:
    dead = f"127.0.0.1:{free_port()}"
    env = {"COMMSGW_TARGET": _target(gateway), "COMMSGW_GRPC_ADDR": dead}
    res = await run_cli("cancel", "--call-id", new_guid(), env=env)
    assert res.code == 1 and "reason=ITEM_NOT_FOUND" in res.err, res.err  # the gateway answered
    # --target wins over COMMSGW_TARGET.
    res = await run_cli("cancel", "--call-id", new_guid(), "--target", dead, env=env)
    assert res.code == 1 and "UNAVAILABLE" in res.err and dead in res.err
    # COMMSGW_GRPC_ADDR is where a gateway listens: clients never read it.
    env = {"COMMSGW_TARGET": dead, "COMMSGW_GRPC_ADDR": _target(gateway)}
    res = await run_cli("cancel", "--call-id", new_guid(), "--timeout", "5", env=env)
    assert res.code == 1 and dead in res.err, res.err
    assert len(res.err_lines) == 1


async def test_version() -> None:
    from commsgw import __version__

    res = await run_cli("--version")
    assert res.code == 0 and res.out.strip() == f"commsgw {__version__}"


async def test_hash_token_reads_stdin_with_a_dash() -> None:
    res = await run_cli("hash-token", "-", stdin=b"tok-ivr-2f9a\n")
    assert res.code == 0 and res.out.strip() == hash_token("tok-ivr-2f9a")
    res = await run_cli("hash-token", "tok-ivr-2f9a")
    assert res.out.strip() == hash_token("tok-ivr-2f9a")
    res = await run_cli("hash-token", "-", stdin=b"")
    assert res.code == 2 and res.err_lines == ["commsgw hash-token: no token given"]


async def test_serve_help_shows_groups_defaults_variables_and_boolean_pairs() -> None:
    res = await run_cli("serve", "--help")
    assert res.code == 0
    text = res.out
    for group in ("listening", "Graph and Azure", "webhook", "event log", "logging", "TLS"):
        assert f"settings: {group}" in text
    assert re.search(r"--grpc-addr HOST:PORT\s+gRPC listen address \(default 127\.0\.0\.1:50051;"
                     r"\s+env\s+COMMSGW_GRPC_ADDR\)", text), text  # fmt: skip
    assert "--reflection, --no-reflection" in text
    assert "--managed-keepalive, --no-managed-keepalive" in text
    assert "--grpc-addr COMMSGW_GRPC_ADDR" not in text  # variables are not metavars
    res = await run_cli("dev", "--help")
    assert "Run the local Graph emulator and the gateway on it" in res.out
    assert re.search(r"json \(one object a line\) or text \(default text;", res.out), res.out


def test_a_boolean_setting_is_a_pair_of_flags() -> None:
    parser = _parser()
    off = parser.parse_args(["serve", "--no-reflection"])
    on = parser.parse_args(["serve", "--reflection"])
    unset = parser.parse_args(["serve"])
    assert (off.reflection, on.reflection, unset.reflection) == (False, True, None)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def test_help_explains_every_flag_of_every_command() -> None:
    commands = _subparsers(_parser())
    for name in ("serve", "dev", "create", "play", "record", "participants invite", "watch"):
        assert name in commands
    parsers = {**commands, "emulator": emulator_parser()}
    for name, sub in parsers.items():
        assert sub.description, f"{name} has no description"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help and action.help.strip(), f"{name} {action.option_strings}"
