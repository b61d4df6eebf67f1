"""The bare server: the gateway's stack (aiohttp webhook + grpc.aio, one event loop, one process)
doing the least work a gateway could. `python -m bench._bare GRPC_PORT HTTP_PORT [LOOP]`.

* POST /api/calls answers 202 after reading the body, nothing else (the no-work ingest line).
* POST /api/fanout is the fan-out floor: it reads the body, decodes its JSON (msgspec, as the
  gateway does), builds the WatchOperationsResponse the gateway would send for that
  notification (the same Event fields, so a message of the same size), serialises it once and
  hands the same bytes to every stream watching that call or everything, then answers 202.
  Left out, compared with the gateway: the JWT check (the gateway serves the reused token from
  its verified-token cache), the watch filters, the event log, the log line and the metrics.
* WatchOperations streams: a START bookmark first (as the gateway sends; its token is the count
  of events so far, and a stream given such a token first gets every event since: the catch-up
  floor), then one message per event; with max_events_per_response above 1, what is queued (up
  to that many) goes out as one batch message (WatchOperationsResponse.batch), as the gateway
  does: nothing waits to fill a batch. GET /streams counts the streams.
* grpc.health.v1, so the driver waits for it as it waits for a gateway.

`serve_stack` and `main_with_loop` are the skeleton the floors in `bench._floors` share.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import importlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
import msgspec
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bench._common import TENANT
from graphcomms.v1 import calls_pb2

SERVICE = "graphcomms.v1.CallsService"
# The gateway's own pending-call limits (see commsgw.server._grpc): gRPC core's defaults
# (1,000 / 3,000) cancel streams of a burst of 10,000 subscribers connecting at once.
GRPC_OPTIONS = [
    ("grpc.server.max_pending_requests", 20_000),
    ("grpc.server.max_pending_requests_hard_limit", 40_000),
    ("grpc.so_reuseport", 0),
]
_BATCH_TAG = b"\x22"  # WatchOperationsResponse.batch: field 4, length-delimited
_TOKEN_TAG = b"\x0a"  # resume_token: field 1


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if not n:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


async def serve_stack(
    grpc_port: int,
    http_port: int,
    *,
    handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]],
    app: web.Application,
    setup: Callable[[grpc.aio.Server], None] | None = None,
) -> None:
    """grpc.aio (the CallsService methods in `handlers`, what `setup` adds, and health) and the
    aiohttp app, on this loop, until killed."""
    server = grpc.aio.server(options=GRPC_OPTIONS)
    if setup is not None:
        setup(server)
    if handlers:
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, dict(handlers)),)
        )
    hs = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port, reuse_address=True).start()
    await server.start()
    await hs.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


def main_with_loop(loop: str, serve: Callable[[], Awaitable[None]]) -> None:
    """Run `serve()` on uvloop (the gateway's default) or asyncio's loop."""
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve())  # type: ignore[arg-type]


class _Stream:
    __slots__ = ("batch", "queue", "waiter")

    def __init__(self, batch: int) -> None:
        # (the message's resume_token field, the message)
        self.queue: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self.waiter = asyncio.Event()
        self.batch = batch


_decode = msgspec.json.Decoder()
_LOG_ID = "b" * 16


def event_message(body: bytes, n: int) -> tuple[str, tuple[bytes, bytes]]:
    """The call id and the serialised WatchOperationsResponse of a one-notification body (with
    the fields the gateway fills for a playPrompt operation notification), beside its
    serialised resume_token field."""
    doc = _decode.decode(body)
    note = doc["value"][0]
    data = note["resourceData"]
    url = note["resourceUrl"]
    call_id = url.split("/")[3]
    now = time.time_ns()
    info = data.get("resultInfo") or {}
    event = calls_pb2.Event(
        tenant_id=TENANT,
        call_id=call_id,
        change_type=calls_pb2.CHANGE_TYPE_DELETED,
        resource_url=url,
        receive_time=Timestamp(seconds=now // 1_000_000_000, nanos=now % 1_000_000_000),
        operation_update=calls_pb2.OperationUpdate(
            operation=calls_pb2.Operation(
                id=data["id"],
                type=calls_pb2.OPERATION_TYPE_PLAY_PROMPT,
                status=calls_pb2.OPERATION_STATUS_COMPLETED,
                client_context=data.get("clientContext", ""),
                result_info=calls_pb2.ResultInfo(
                    code=info.get("code", 0),
                    subcode=info.get("subcode", 0),
                    message=info.get("message", ""),
                ),
                odata_type=data.get("@odata.type", ""),
            )
        ),
    )
    # A resume token of the gateway's shape and length (it encodes the log id and position).
    token = base64.urlsafe_b64encode(f"1|{_LOG_ID}|{now // 1_000_000}-{n}".encode()).rstrip(b"=")
    msg = calls_pb2.WatchOperationsResponse(
        resume_token=token.decode(), event=event
    ).SerializeToString()
    return call_id, (_TOKEN_TAG + _varint(len(token)) + token, msg)


class Bare:
    def __init__(self) -> None:
        self.by_call: dict[str, set[_Stream]] = {}
        self.everything: set[_Stream] = set()
        self._n = 0
        # Every event message so far, for a stream that resumes (the catch-up floor): a
        # resume_token is the number of events before it, as a START bookmark gives it.
        self.history: list[tuple[bytes, bytes]] = []

    async def streams(self, request: web.Request) -> web.Response:
        n = len(self.everything) + sum(len(v) for v in self.by_call.values())
        return web.Response(text=str(n))

    async def ingest(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    async def fanout(self, request: web.Request) -> web.Response:
        self._n += 1
        call_id, msg = event_message(await request.read(), self._n)
        self.history.append(msg)
        for s in (*self.by_call.get(call_id, ()), *self.everything):
            s.queue.append(msg)
            s.waiter.set()
        return web.Response(status=202)

    async def watch(
        self, request: calls_pb2.WatchOperationsRequest, context: Any
    ) -> AsyncIterator[bytes]:
        s = _Stream(max(1, request.max_events_per_response))
        ids = list(request.call_ids)
        for c in ids:
            self.by_call.setdefault(c, set()).add(s)
        if not ids:
            self.everything.add(s)
        queue = s.queue
        # The stream's first message is a START bookmark whose token resumes after every event
        # so far; a stream given such a token first gets the events since (of every call: the
        # catch-up load watches everything).
        yield calls_pb2.WatchOperationsResponse(
            resume_token=str(len(self.history)),
            bookmark=calls_pb2.Bookmark(kind=calls_pb2.BOOKMARK_KIND_START),
        ).SerializeToString()
        if request.resume_token:
            queue.extend(self.history[int(request.resume_token) :])
        try:
            while True:
                if queue:
                    if s.batch == 1 or len(queue) == 1:
                        yield queue.popleft()[1]
                        continue
                    parts: list[bytes] = []
                    token = b""
                    for _ in range(min(s.batch, len(queue))):
                        token, msg = queue.popleft()
                        parts += (_BATCH_TAG, _varint(len(msg)), msg)
                    # The batch's own resume_token is its last event's.
                    yield token + b"".join(parts)
                    continue
                s.waiter.clear()
                await s.waiter.wait()
        finally:
            for c in ids:
                self.by_call.get(c, set()).discard(s)
            self.everything.discard(s)


async def serve(grpc_port: int, http_port: int) -> None:
    bare = Bare()
    handler = grpc.unary_stream_rpc_method_handler(
        bare.watch,
        request_deserializer=calls_pb2.WatchOperationsRequest.FromString,
        response_serializer=lambda b: b,
    )
    app = web.Application(client_max_size=(1 << 20) + 1)
    app.router.add_post("/api/calls", bare.ingest)
    app.router.add_post("/api/fanout", bare.fanout)
    app.router.add_get("/streams", bare.streams)
    await serve_stack(grpc_port, http_port, handlers={"WatchOperations": handler}, app=app)


def main() -> None:
    loop = sys.argv[3] if len(sys.argv) > 3 else "uvloop"
    # Modules to load before serving (comma-separated): the cold-start floor that carries the
    # libraries every gateway must load (MSAL, PyJWT with cryptography, the contract).
    for module in filter(None, (sys.argv[4] if len(sys.argv) > 4 else "").split(",")):
        importlib.import_module(module)
    main_with_loop(loop, lambda: serve(int(sys.argv[1]), int(sys.argv[2])))


if __name__ == "__main__":
    main()
