"""The contract's ErrorReason enum lists every reason the gateway sends to gRPC callers, and a
client does not resume a watch refused with TOO_MANY_STREAMS."""

from __future__ import annotations

import ast
import asyncio
import pathlib

import grpc
import pytest

from commsgw import _errors
from commsgw.emulator import Emulator
from commsgw_client import ErrorReason, GatewayClient, ResourceExhaustedError
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.gateway import gateway_settings, running_gateway

PACKAGE = pathlib.Path(_errors.__file__).resolve().parent
# Reasons that never reach a gRPC caller: the webhook answers HTTP, settings stop start-up.
NOT_GRPC = (_errors.NotificationError, _errors.ConfigError)
# Kinds that are only ever raised as one of their subclasses, or with an explicit reason.
ABSTRACT = (
    _errors.InvalidArgument,
    _errors.FailedPrecondition,
    _errors.CallerError,
    _errors.GraphError,
    _errors.WatchError,
    _errors.Unavailable,
)

pytestmark = pytest.mark.e2e


def _gateway_sources() -> list[pathlib.Path]:
    return [p for p in PACKAGE.rglob("*.py") if "emulator" not in p.relative_to(PACKAGE).parts]


def _subclasses(cls: type[_errors.CommsgwError]) -> list[type[_errors.CommsgwError]]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_every_error_kind_reason_is_in_the_enum() -> None:
    names = set(ErrorReason.keys())
    kinds = [_errors.CommsgwError, *_subclasses(_errors.CommsgwError)]
    for kind in kinds:
        if issubclass(kind, NOT_GRPC) or kind in ABSTRACT:
            continue
        assert kind.reason in names, f"{kind.__name__}.reason {kind.reason} is not an ErrorReason"


def test_every_literal_reason_in_the_gateway_is_in_the_enum() -> None:
    names = set(ErrorReason.keys())
    found: dict[str, str] = {}
    for path in _gateway_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "reason"
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found[node.value.value] = f"{path.name}:{node.value.lineno}"
    assert found, "no reason= literal found: the scan is broken"
    missing = {r: where for r, where in found.items() if r not in names}
    assert not missing, f"reasons sent but not in ErrorReason: {missing}"


def test_refusals_are_always_raised_with_a_precise_reason() -> None:
    for path in _gateway_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("InvalidArgument", "FailedPrecondition")
            ):
                kwargs = {k.arg for k in node.keywords}
                assert "reason" in kwargs, f"{node.func.id} without reason at {path.name}"


def test_abstract_kinds_are_never_raised_directly() -> None:
    abstract = {
        k.__name__
        for k in ABSTRACT
        if k not in (_errors.InvalidArgument, _errors.FailedPrecondition)
    }
    abstract -= {"GraphError"}  # raised directly for Graph's own error answers (with its code)
    for path in _gateway_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in abstract, f"{node.func.id}(...) in {path.name}"


async def test_client_raises_too_many_streams_instead_of_resuming(emulator: Emulator) -> None:
    settings = gateway_settings(emulator, COMMSGW_MAX_STREAMS="1")
    async with (
        running_gateway(settings) as gw,
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch,
        GatewayClient(f"127.0.0.1:{gw.grpc_port}") as client,
    ):
        holder = calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(
            calls_pb2.WatchOperationsRequest()
        )
        first = await holder.read()  # the START bookmark: the one stream allowed is open
        assert first.WhichOneof("kind") == "bookmark"
        watch = client.watch_operations()
        with pytest.raises(ResourceExhaustedError) as info:
            async with asyncio.timeout(10):
                await anext(watch)
        assert info.value.reason == ErrorReason.Name(ErrorReason.TOO_MANY_STREAMS)
        assert watch.reconnects == 0
        holder.cancel()
