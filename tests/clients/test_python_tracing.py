"""The Python client passes the caller's OpenTelemetry trace context: a call made while a span
is active carries it (traceparent, tracestate, whatever the configured propagator writes), so
the gateway's RPC span continues the caller's trace, parented by the caller's span. Without an
active span (or without the opentelemetry API) nothing is sent and the gateway's span is a
root. A watch carries the context it was started in on every reconnect, wherever it is
iterated. The caller's spans come from a TracerProvider of the test's own (the global one is
left alone)."""

from __future__ import annotations

import asyncio
import sys

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commsgw.emulator import Emulator
from commsgw.server import Gateway
from commsgw_client import GatewayClient, RetryPolicy, SyncGatewayClient, _common
from helpers.client_flavours import FLAVOURS, open_client
from helpers.emulator import GraphUser
from helpers.gateway import webhook_url
from helpers.ids import new_guid
from helpers.notifications import Poster, op_notification
from helpers.polling import eventually
from helpers.proxy import Proxy
from helpers.tracing import continues, rpc_span, rpc_spans, traceparent
from helpers.watch import started

pytestmark = pytest.mark.e2e

FAST = RetryPolicy(initial_backoff=0.05, max_backoff=0.5)
PROMPT_URI = "https://cdn.example/hello.wav"


@pytest.fixture
def tracer() -> trace.Tracer:
    """The caller's tracer: an SDK provider of this test's own (its spans are valid and
    sampled; nothing is exported)."""
    return TracerProvider().get_tracer("caller")


def ids(span: trace.Span) -> tuple[int, int]:
    sc = span.get_span_context()
    return sc.trace_id, sc.span_id


async def test_unary_calls_in_a_span_continue_its_trace(
    emulator: Emulator,
    traced: tuple[Gateway, InMemorySpanExporter],
    graph_user: GraphUser,
    tracer: trace.Tracer,
) -> None:
    gw, exporter = traced
    emulator.media_op_seconds = 0.2
    call_id = await graph_user.create_call(webhook_url(gw))
    async with GatewayClient(f"127.0.0.1:{gw.grpc_port}") as client:
        with tracer.start_as_current_span("caller") as caller:
            await client.cancel_media_processing(call_id, timeout=10)
            # A media RPC and the wait for its operation: two calls, both in the span.
            await client.play_prompt(call_id, [PROMPT_URI], wait=True, timeout=10)
    for method in ("CancelMediaProcessing", "PlayPrompt", "WaitOperation"):
        assert continues(await rpc_span(exporter, method)) == ids(caller), method


async def test_without_an_active_span_no_trace_context_is_sent(
    traced: tuple[Gateway, InMemorySpanExporter], graph_user: GraphUser
) -> None:
    gw, exporter = traced
    call_id = await graph_user.create_call(webhook_url(gw))
    assert not trace.get_current_span().get_span_context().is_valid
    assert _common.trace_metadata() == ()
    assert [k for k, _ in _common.call_metadata("t0k3n", "crid")] == [
        "authorization",
        "x-client-request-id",
    ]
    async with GatewayClient(f"127.0.0.1:{gw.grpc_port}") as client:
        await client.cancel_media_processing(call_id, timeout=10)
        watch = client.watch_operations(call_ids=[call_id], include_snapshot=True)
        await asyncio.wait_for(anext(watch), 10)
        watch.close()
    assert continues(await rpc_span(exporter, "CancelMediaProcessing")) is None
    assert continues(await rpc_span(exporter, "WatchOperations")) is None


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_resumed_watch_carries_the_context_it_was_started_in(
    emulator: Emulator,
    traced: tuple[Gateway, InMemorySpanExporter],
    tracer: trace.Tracer,
    flavour: str,
) -> None:
    gw, exporter = traced
    async with Proxy(gw.grpc_port) as proxy, Poster(emulator, gw) as poster:
        call_id, ops = new_guid(), [new_guid(), new_guid()]
        async with open_client(flavour, f"127.0.0.1:{proxy.port}", retry=FAST) as client:
            with tracer.start_as_current_span("watcher") as caller:
                watch = client.watch_operations(call_ids=[call_id], bookmarks=False)
            # Iterated outside the span, by tasks that never saw it.
            first = asyncio.create_task(anext(watch))
            await started(gw, 1)
            await poster.post([op_notification(call_id, ops[0])])
            got = [await asyncio.wait_for(first, 10)]
            await proxy.cut()
            rest = asyncio.create_task(anext(watch))
            await eventually(lambda: watch.reconnects >= 1, what="a reconnect")
            await proxy.start()
            await started(gw, 1)
            await poster.post([op_notification(call_id, ops[1])])
            got.append(await asyncio.wait_for(rest, 10))
            watch.close()
    assert [r.event.operation_update.operation.id for r in got] == ops
    await rpc_span(exporter, "WatchOperations", count=2)
    streams = rpc_spans(exporter, "WatchOperations")
    assert [continues(s) for s in streams] == [ids(caller)] * len(streams)


async def test_the_sync_client_sends_the_context_of_its_thread(
    traced: tuple[Gateway, InMemorySpanExporter], graph_user: GraphUser, tracer: trace.Tracer
) -> None:
    gw, exporter = traced
    call_id = await graph_user.create_call(webhook_url(gw))

    def calls() -> tuple[int, int]:
        with (
            SyncGatewayClient(f"127.0.0.1:{gw.grpc_port}") as client,
            tracer.start_as_current_span("sync caller") as caller,
        ):
            client.cancel_media_processing(call_id, timeout=10)
            with client.watch_operations(call_ids=[call_id], include_snapshot=True) as watch:
                next(watch)  # the SNAPSHOT_END bookmark
            return ids(caller)

    caller = await asyncio.to_thread(calls)
    assert continues(await rpc_span(exporter, "CancelMediaProcessing")) == caller
    assert continues(await rpc_span(exporter, "WatchOperations")) == caller


def test_what_the_configured_propagator_writes_is_sent(tracer: trace.Tracer) -> None:
    """The default propagators (W3C trace context and baggage), as lower-case metadata."""
    token = context.attach(baggage.set_baggage("tenant", "contoso"))
    try:
        with tracer.start_as_current_span("caller") as caller:
            sc = caller.get_span_context()
            md = dict(_common.call_metadata(None))
    finally:
        context.detach(token)
    assert md["traceparent"] == traceparent(sc.trace_id, sc.span_id, flags=sc.trace_flags)
    assert md["baggage"] == "tenant=contoso"
    assert all(k == k.lower() for k in md)


def test_without_opentelemetry_nothing_is_sent(
    monkeypatch: pytest.MonkeyPatch, tracer: trace.Tracer
) -> None:
    """The API is an optional dependency: when it cannot be imported the client sends no trace
    context (and needs nothing more)."""
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "opentelemetry", None)
        inject = _common._trace_context_injector()
    with tracer.start_as_current_span("caller"):
        assert inject() == ()
