"""Tracing with OpenTelemetry: spans for each RPC, each Graph attempt, each token acquisition
and each webhook POST, continuing the caller's W3C trace context.

Off unless the process environment names an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): then spans are exported with OTLP over gRPC, and the
OpenTelemetry SDK reads the other standard `OTEL_*` variables (service name, headers, sampler,
batch delays) itself. Off, every hook is a single attribute check (`Tracing.enabled`): the hot
path makes no span objects at all.

Span attributes never carry secrets: no token, no recording access token, no request body.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:  # the SDK is imported only when tracing is on (it costs start-up memory)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "Link",
    "Span",
    "SpanKind",
    "Status",
    "StatusCode",
    "Tracing",
    "context_from",
    "from_environment",
    "span_context_of",
    "traceparent_of",
]

_PROPAGATOR = TraceContextTextMapPropagator()
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass(frozen=True)
class Tracing:
    """Whether spans are made, and the tracer that makes them."""

    enabled: bool = False
    tracer: Tracer = field(default_factory=lambda: trace.NoOpTracer())
    provider: TracerProvider | None = None

    @classmethod
    def with_exporter(
        cls, exporter: SpanExporter, *, batch: bool = True, service_name: str = "commsgw"
    ) -> Tracing:
        """Tracing into `exporter`: in batches (OTLP), or each span at its end (tests' in-memory
        exporter)."""
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = _provider(service_name)
        provider.add_span_processor(
            BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        )
        return cls(True, provider.get_tracer("commsgw"), provider)

    def shutdown(self) -> None:
        """Flush and stop the exporter (at process exit)."""
        if self.provider is not None:
            self.provider.shutdown()


def _provider(service_name: str) -> TracerProvider:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))


def from_environment(environ: Mapping[str, str]) -> Tracing:
    """Tracing as the standard OTEL_* variables ask: OTLP/gRPC when an endpoint is named (the
    exporter reads the endpoint, headers and TLS settings from the environment itself)."""
    if not any(environ.get(name) for name in _ENDPOINTS) or environ.get(
        "OTEL_SDK_DISABLED", ""
    ).lower() in ("true", "1"):
        return Tracing()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return Tracing.with_exporter(
        OTLPSpanExporter(), service_name=environ.get("OTEL_SERVICE_NAME", "commsgw")
    )


def context_from(pairs: Iterable[tuple[str, Any]]) -> Context:
    """The trace context a caller sent (W3C `traceparent`/`tracestate`), as a parent context."""
    carrier = {k: v for k, v in pairs if isinstance(v, str) and k in ("traceparent", "tracestate")}
    return _PROPAGATOR.extract(carrier)


def traceparent_of(span: trace.Span) -> str:
    """A span's W3C traceparent (to store beside an event: its POST, for delivery links)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


@functools.lru_cache(maxsize=4096)
def span_context_of(traceparent: str) -> SpanContext | None:
    """The span context a stored traceparent names, None when it names none.

    Remembered for the last 4,096 traceparents: an event reaches every subscriber it matches
    with the same traceparent (its POST's), so it is parsed once per event, not once per
    delivery. A SpanContext is immutable, so one is shared safely."""
    ctx = trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent}))
    sc = ctx.get_span_context()
    return sc if sc.is_valid else None
