"""A small OTLP/gRPC trace receiver for the tracing scenario: `python -m bench._otlp GRPC_PORT
HTTP_PORT`. It accepts every ExportTraceServiceRequest (counting the spans, keeping nothing),
answers grpc.health.v1 like the other servers, and GET /spans gives the count."""

from __future__ import annotations

import sys
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench._bare import main_with_loop, serve_stack


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self.requests = 0

    async def Export(self, request: Any, context: Any) -> Any:
        self.requests += 1
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                self.spans += len(ss.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


async def serve(grpc_port: int, http_port: int) -> None:
    receiver = Receiver()

    async def spans(request: web.Request) -> web.Response:
        return web.json_response({"spans": receiver.spans, "requests": receiver.requests})

    def setup(server: grpc.aio.Server) -> None:
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)

    app = web.Application()
    app.router.add_get("/spans", spans)
    await serve_stack(grpc_port, http_port, handlers={}, app=app, setup=setup)


def main() -> None:
    main_with_loop("uvloop", lambda: serve(int(sys.argv[1]), int(sys.argv[2])))


if __name__ == "__main__":
    main()
