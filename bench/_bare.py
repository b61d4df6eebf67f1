"""The baselines' servers: the gateway's stack (aiohttp webhook + grpc.aio, one asyncio loop,
one process) doing no work of its own. `python -m bench._bare GRPC_PORT HTTP_PORT`.

* POST /api/calls answers 202 after reading the body, nothing else (the bare ingest handler).
* POST /api/fanout reads the body, takes the call id and send time from the headers
  `x-call` and `x-ts` (no JSON parsing, no JWT), builds one WatchOperationsResponse and hands
  the same bytes to every stream watching that call or everything, then answers 202 (the bare
  fan-out: a grpc.aio server streaming prebuilt messages).
* WatchOperations streams: every message handed to them; GET /streams counts them.
* grpc.health.v1, so the driver waits for it as it waits for a gateway.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from graphcomms.v1 import calls_pb2

SERVICE = "graphcomms.v1.CallsService"


class _Stream:
    __slots__ = ("queue", "waiter")

    def __init__(self) -> None:
        self.queue: collections.deque[bytes] = collections.deque()
        self.waiter = asyncio.Event()


class Bare:
    def __init__(self) -> None:
        self.by_call: dict[str, set[_Stream]] = {}
        self.everything: set[_Stream] = set()

    async def streams(self, request: web.Request) -> web.Response:
        n = len(self.everything) + sum(len(v) for v in self.by_call.values())
        return web.Response(text=str(n))

    async def ingest(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    async def fanout(self, request: web.Request) -> web.Response:
        await request.read()
        call_id = request.headers.get("x-call", "")
        msg = calls_pb2.WatchOperationsResponse(
            resume_token="bare",
            event=calls_pb2.Event(
                call_id=call_id,
                operation_update=calls_pb2.OperationUpdate(
                    operation=calls_pb2.Operation(client_context=request.headers.get("x-ts", ""))
                ),
            ),
        ).SerializeToString()
        for s in (*self.by_call.get(call_id, ()), *self.everything):
            s.queue.append(msg)
            s.waiter.set()
        return web.Response(status=202)

    async def watch(
        self, request: calls_pb2.WatchOperationsRequest, context: Any
    ) -> AsyncIterator[bytes]:
        s = _Stream()
        ids = list(request.call_ids)
        for c in ids:
            self.by_call.setdefault(c, set()).add(s)
        if not ids:
            self.everything.add(s)
        try:
            while True:
                while s.queue:
                    yield s.queue.popleft()
                s.waiter.clear()
                await s.waiter.wait()
        finally:
            for c in ids:
                self.by_call.get(c, set()).discard(s)
            self.everything.discard(s)


async def serve(grpc_port: int, http_port: int) -> None:
    bare = Bare()
    # The gateway's own pending-call limits (see commsgw.server._gateway): gRPC core's defaults
    # (1,000 / 3,000) cancel streams of a burst of 10,000 subscribers connecting at once.
    server = grpc.aio.server(
        options=[
            ("grpc.server.max_pending_requests", 20_000),
            ("grpc.server.max_pending_requests_hard_limit", 40_000),
        ]
    )
    handler = grpc.unary_stream_rpc_method_handler(
        bare.watch,
        request_deserializer=calls_pb2.WatchOperationsRequest.FromString,
        response_serializer=lambda b: b,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"WatchOperations": handler}),)
    )
    hs = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    app = web.Application(client_max_size=(1 << 20) + 1)
    app.router.add_post("/api/calls", bare.ingest)
    app.router.add_post("/api/fanout", bare.fanout)
    app.router.add_get("/streams", bare.streams)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port, reuse_address=True).start()
    await server.start()
    await hs.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


def main() -> None:
    loop = sys.argv[3] if len(sys.argv) > 3 else "uvloop"
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(int(sys.argv[1]), int(sys.argv[2])))


if __name__ == "__main__":
    main()
