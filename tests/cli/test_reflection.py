"""Server reflection of a real `commsgw serve` process, as a client without stubs uses it (the
README's `buf curl`): it lists CallsService, serves the files an error's details need, and an
error's ErrorInfo decodes with nothing but what reflection served. `--no-reflection` turns it
off."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from commsgw.emulator import Emulator
from commsgw.testing import GatewayProcess
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.gateway import process_env
from helpers.ids import new_guid

pytestmark = pytest.mark.e2e

Request = reflection_pb2.ServerReflectionRequest


@pytest.fixture
async def served(emulator: Emulator, tmp_path: pathlib.Path) -> AsyncIterator[GatewayProcess]:
    gateway = GatewayProcess(process_env(emulator), tmp_path / "gateway.log")
    await gateway.start()
    try:
        yield gateway
    finally:
        gateway.terminate()


async def _ask(target: str, *requests: Request) -> list[reflection_pb2.ServerReflectionResponse]:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        return [r async for r in stub.ServerReflectionInfo(iter(requests), timeout=10)]


async def _pool_from_reflection(target: str, symbol: str) -> descriptor_pool.DescriptorPool:
    """A descriptor pool of its own, filled with the file holding `symbol` and every file it
    imports, as the server reflects them."""
    pool = descriptor_pool.DescriptorPool()
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    (first,) = await _ask(target, Request(file_containing_symbol=symbol))
    wanted = list(first.file_descriptor_response.file_descriptor_proto)
    while wanted:
        fd = descriptor_pb2.FileDescriptorProto.FromString(wanted.pop())
        if fd.name in files:
            continue
        files[fd.name] = fd
        for dep in fd.dependency:
            if dep not in files:
                (more,) = await _ask(target, Request(file_by_filename=dep))
                wanted += list(more.file_descriptor_response.file_descriptor_proto)

    def add(name: str) -> None:
        fd = files.pop(name, None)
        if fd is not None:
            for dep in fd.dependency:
                add(dep)
            pool.Add(fd)

    for name in list(files):
        add(name)
    return pool


async def test_reflection_lists_the_service_and_serves_error_details(
    served: GatewayProcess,
) -> None:
    listed, error_info, by_name = await _ask(
        served.target,
        Request(list_services=""),
        Request(file_containing_symbol="google.rpc.ErrorInfo"),
        Request(file_by_filename="google/rpc/error_details.proto"),
    )
    names = {s.name for s in listed.list_services_response.service}
    assert "graphcomms.v1.CallsService" in names
    for answer in (error_info, by_name):
        assert answer.WhichOneof("message_response") == "file_descriptor_response", answer
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in answer.file_descriptor_response.file_descriptor_proto
        ]
        assert files[0].name == "google/rpc/error_details.proto"
        assert "ErrorInfo" in {m.name for m in files[0].message_type}


async def test_an_errors_error_info_decodes_from_reflection_alone(served: GatewayProcess) -> None:
    pool = await _pool_from_reflection(served.target, "google.rpc.ErrorInfo")
    error_info = message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.ErrorInfo"))
    async with grpc.aio.insecure_channel(served.target) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await calls_pb2_grpc.CallsServiceStub(ch).GetCall(
                calls_pb2.GetCallRequest(call_id="not-a-guid"), timeout=10
            )
    status = rpc_status.from_call(failed.value)
    assert status is not None
    (detail,) = status.details
    assert detail.type_url == "type.googleapis.com/google.rpc.ErrorInfo"
    info = error_info.FromString(detail.value)
    assert (info.reason, info.domain) == ("INVALID_CALL_ID", "commsgw")
    # The contract's own files come the same way (what `buf curl --reflect` reads).
    pool = await _pool_from_reflection(served.target, "graphcomms.v1.CallsService")
    assert pool.FindServiceByName("graphcomms.v1.CallsService").FindMethodByName("PlayPrompt")


async def test_no_reflection_flag_turns_it_off(emulator: Emulator, tmp_path: pathlib.Path) -> None:
    gateway = GatewayProcess(
        process_env(emulator),
        tmp_path / "gateway.log",
        argv=[sys.executable, "-m", "commsgw", "serve", "--no-reflection"],
    )
    await gateway.start()
    try:
        # No request is sent: the answer is the method's status alone (a request sent while
        # the server refuses the stream could fail on the client's side first).
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _ask(gateway.target)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        async with grpc.aio.insecure_channel(gateway.target) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as answered:
                await calls_pb2_grpc.CallsServiceStub(ch).GetCall(
                    calls_pb2.GetCallRequest(call_id=new_guid()), timeout=10
                )
        assert answered.value.code() == grpc.StatusCode.NOT_FOUND  # the gateway itself serves
    finally:
        gateway.terminate()
