"""Tracing: the gateway continues the caller's W3C trace context and makes spans for each RPC,
each Graph attempt, token acquisition, each webhook POST (validate, parse, append) and each
delivery (linked to its POST). Checked with the SDK's in-memory exporter, and over the wire
with a real OTLP/gRPC receiver started here. No span attribute carries a secret."""

from __future__ import annotations

import pathlib
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commsgw.emulator import Emulator, Fault
from commsgw.server import Gateway
from commsgw.testing import GatewayProcess
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.emulator import CANCEL_PATH, GraphUser
from helpers.gateway import process_env, webhook_url
from helpers.logscan import leaks
from helpers.notifications import Poster, op_notification
from helpers.polling import eventually
from helpers.tracing import spans_named, traceparent

pytestmark = pytest.mark.e2e

TRACE_ID, PARENT_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7
TRACEPARENT = traceparent(TRACE_ID, PARENT_ID)


async def test_an_rpc_continues_the_callers_trace_and_each_graph_attempt_is_a_child(
    emulator: Emulator,
    traced: tuple[Gateway, InMemorySpanExporter],
    graph_user: GraphUser,
) -> None:
    gw, exporter = traced
    call_id = await graph_user.create_call(webhook_url(gw))
    emulator.faults.add(Fault(path_pattern=CANCEL_PATH, status=503, retry_after=0.01))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
        await calls_pb2_grpc.CallsServiceStub(ch).CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(call_id=call_id),
            metadata=(("traceparent", TRACEPARENT),),
            timeout=10,
        )
    name = "graphcomms.v1.CallsService/CancelMediaProcessing"
    rpc = await eventually(lambda: spans_named(exporter, name), what="the RPC's span")
    span = rpc[0]
    assert span.context.trace_id == TRACE_ID
    assert span.parent.span_id == PARENT_ID
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert span.attributes["commsgw.graph_request_id"]
    attempts = sorted(
        (
            s
            for s in spans_named(exporter, "graph POST")
            if s.parent.span_id == span.context.span_id
        ),
        key=lambda s: s.attributes["commsgw.graph.attempt"],
    )
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 200]
    assert [a.attributes["commsgw.graph.retry"] for a in attempts] == [False, True]
    assert attempts[1].attributes["commsgw.graph_request_id"]
    assert (
        attempts[0].attributes["commsgw.client_request_id"]
        == span.attributes["commsgw.client_request_id"]
    )
    assert spans_named(exporter, "token acquisition"), "no span for the token acquisition"


async def test_a_webhook_post_and_its_deliveries_are_linked(
    traced: tuple[Gateway, InMemorySpanExporter], emulator: Emulator
) -> None:
    gw, exporter = traced
    async with Poster(emulator, gw) as poster:
        call_id, op_id = (
            "7e7b6b3a-1111-4c2b-9a5e-0a1b2c3d4e5f",
            "9a8b7c6d-2222-4e5f-8a9b-1c2d3e4f5a6b",
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            watch = calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(
                calls_pb2.WatchOperationsRequest(call_ids=[call_id])
            )
            assert (await watch.read()).WhichOneof("kind") == "bookmark"
            r = await poster.post([op_notification(call_id, op_id)])
            assert r.status_code == 202
            got = await watch.read()
            assert got.event.operation_update.operation.id == op_id
            watch.cancel()
    post = (await eventually(lambda: spans_named(exporter, "webhook POST"), what="POST span"))[0]
    assert post.attributes["http.response.status_code"] == 202
    children = {
        s.name for s in exporter.get_finished_spans() if s.parent is not None
        and s.parent.span_id == post.context.span_id
    }  # fmt: skip
    assert children == {"validate token", "parse", "append"}
    deliver = (await eventually(lambda: spans_named(exporter, "deliver"), what="delivery span"))[0]
    assert [link.context.span_id for link in deliver.links] == [post.context.span_id]
    assert deliver.context.trace_id != post.context.trace_id  # a link, not a parent


async def test_no_span_attribute_carries_a_secret(
    traced: tuple[Gateway, InMemorySpanExporter], emulator: Emulator, graph_user: GraphUser
) -> None:
    gw, exporter = traced
    call_id = await graph_user.create_call(webhook_url(gw))
    await graph_user.record(call_id, "vm")
    async with Poster(emulator, gw) as poster:
        note = op_notification(call_id, "5a4b3c2d-3333-4e5f-8a9b-2c3d4e5f6a7b")
        note["resourceData"]["recordingAccessToken"] = "rec-secret-42"
        assert (await poster.post([note])).status_code == 202
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
        await calls_pb2_grpc.CallsServiceStub(ch).CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
        )
    await eventually(lambda: spans_named(exporter, "webhook POST"), what="spans")
    spans = exporter.get_finished_spans()
    assert len(spans) >= 5
    text = "\n".join(f"{s.name} {dict(s.attributes or {})} {s.events} {s.status}" for s in spans)
    assert not leaks(text), leaks(text)


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def span_names(self) -> set[str]:
        return {
            span.name
            for req in self.requests
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        }

    def service_names(self) -> set[str]:
        return {
            attr.value.string_value
            for req in self.requests
            for rs in req.resource_spans
            for attr in rs.resource.attributes
            if attr.key == "service.name"
        }


async def test_spans_reach_an_otlp_receiver_from_a_gateway_process(
    emulator: Emulator, graph_user: GraphUser, tmp_path: pathlib.Path
) -> None:
    receiver = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    env = process_env(
        emulator,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_SERVICE_NAME="commsgw-under-test",
    )
    gw = GatewayProcess(env, tmp_path / "gw.log")
    try:
        await gw.start()
        call_id = await graph_user.create_call(gw.webhook)
        async with grpc.aio.insecure_channel(gw.target) as ch:
            await calls_pb2_grpc.CallsServiceStub(ch).CancelMediaProcessing(
                calls_pb2.CancelMediaProcessingRequest(call_id=call_id),
                metadata=(("traceparent", TRACEPARENT),),
                timeout=10,
            )
        await eventually(
            lambda: "graphcomms.v1.CallsService/CancelMediaProcessing" in receiver.span_names(),
            what="the RPC's span exported over OTLP",
            timeout=15,
        )
        assert "graph POST" in receiver.span_names()
        assert receiver.service_names() == {"commsgw-under-test"}
    finally:
        assert gw.terminate() == 0
        server.stop(0)
