"""A gateway that traces into the OpenTelemetry SDK's in-memory exporter, and reading the spans
of its RPCs: whose trace they continue, and from which parent span."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commsgw._tracing import Tracing
from commsgw.emulator import Emulator
from commsgw.server import Gateway
from helpers.gateway import gateway_settings
from helpers.polling import eventually

SERVICE = "graphcomms.v1.CallsService"


@contextlib.asynccontextmanager
async def traced_gateway(
    emulator: Emulator, **env: Any
) -> AsyncIterator[tuple[Gateway, InMemorySpanExporter]]:
    """An in-process gateway whose spans go, unbatched, to the in-memory exporter it yields."""
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_exporter(exporter, batch=False)
    gw = Gateway(gateway_settings(emulator, **env), tracing)
    await gw.start()
    try:
        yield gw, exporter
    finally:
        await gw.stop(0)
        tracing.shutdown()


def traceparent(
    trace_id: int, span_id: int, sampled: bool = True, *, flags: int | None = None
) -> str:
    """The W3C traceparent of a span: its trace flags are `flags` when given (all of them, the
    random-trace-id bit of Trace Context level 2 included), else just the sampled bit."""
    if flags is None:
        flags = 1 if sampled else 0
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The finished spans called `name` ("graph POST", "deliver", ...), oldest first."""
    return [s for s in exporter.get_finished_spans() if s.name == name]


def rpc_spans(exporter: InMemorySpanExporter, method: str) -> list[ReadableSpan]:
    """The finished server spans of one RPC (`method`: "PlayPrompt", ...)."""
    return spans_named(exporter, f"{SERVICE}/{method}")


async def rpc_span(exporter: InMemorySpanExporter, method: str, count: int = 1) -> ReadableSpan:
    """The last of `count` finished spans of `method`, once they are there (a watch's span ends
    with its stream)."""
    await eventually(
        lambda: len(rpc_spans(exporter, method)) >= count, what=f"{count} {method} span(s)"
    )
    return rpc_spans(exporter, method)[-1]


def continues(span: ReadableSpan) -> tuple[int, int] | None:
    """(trace id, parent span id) of the caller's span an RPC span continues; None for a root
    span (the call carried no trace context)."""
    if span.parent is None:
        return None
    assert span.parent.is_remote, "the RPC span's parent is not the caller's"
    return span.context.trace_id, span.parent.span_id
