"""Reading WatchOperations streams."""

from __future__ import annotations

import asyncio

import grpc

from commsgw.server._gateway import Gateway
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.polling import eventually

Resp = calls_pb2.WatchOperationsResponse


async def collect(
    stub: calls_pb2_grpc.CallsServiceStub,
    request: calls_pb2.WatchOperationsRequest,
    n: int,
    *,
    events_only: bool = True,
    timeout: float = 10,
) -> list[Resp]:
    """The first `n` responses (events only, unless told) of a new stream, which is then
    cancelled; TimeoutError when they do not come within `timeout`."""
    out: list[Resp] = []
    call = stub.WatchOperations(request)
    try:
        async with asyncio.timeout(timeout):
            async for r in call:
                if events_only and r.WhichOneof("kind") != "event":
                    continue
                out.append(r)
                if len(out) >= n:
                    break
    finally:
        call.cancel()
    return out


async def started(gateway: Gateway, count: int) -> None:
    """Wait until `count` subscribers are registered with the gateway's hub."""
    await eventually(lambda: gateway.hub.subscribers >= count, what=f"{count} subscribers")


async def first_bookmark(target: str, call_id: str) -> str:
    """Subscribe and return the token of the first bookmark (the stream is registered)."""
    async with grpc.aio.insecure_channel(target) as ch:
        call = calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(
            calls_pb2.WatchOperationsRequest(call_ids=[call_id])
        )
        async for r in call:
            call.cancel()
            return str(r.resume_token)
    raise AssertionError("stream ended without a bookmark")
