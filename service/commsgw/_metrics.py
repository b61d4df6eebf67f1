"""Prometheus metrics of one gateway process (its own registry, served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric the gateway exports; one instance per Gateway."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.rpcs = Counter(
            "commsgw_rpc_requests", "gRPC calls by method and status code", ["method", "code"],
            registry=r,
        )  # fmt: skip
        self.rpc_latency = Histogram(
            "commsgw_rpc_duration_seconds", "gRPC call duration (whole stream for watches)",
            ["method"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.graph_requests = Counter(
            "commsgw_graph_requests", "Graph requests by HTTP status (0: no answer)", ["status"],
            registry=r,
        )  # fmt: skip
        self.graph_latency = Histogram(
            "commsgw_graph_request_duration_seconds", "Graph request duration",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.graph_retries = Counter(
            "commsgw_graph_retries", "Graph requests that were retries", registry=r
        )
        self.token_refreshes = Counter(
            "commsgw_token_refreshes", "App tokens acquired from the authority",
            ["forced"], registry=r,
        )  # fmt: skip
        self.webhook_requests = Counter(
            "commsgw_webhook_requests", "Webhook POSTs by HTTP status answered", ["status"],
            registry=r,
        )  # fmt: skip
        self.webhook_latency = Histogram(
            "commsgw_webhook_duration_seconds", "Webhook POST duration, until its answer",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.notifications = Counter(
            "commsgw_notifications", "Notifications by outcome", ["outcome"], registry=r
        )
        self.cut = Counter(
            "commsgw_subscribers_cut", "Watch streams ended by the gateway", ["reason"],
            registry=r,
        )  # fmt: skip
        self.log_lag = Gauge(
            "commsgw_event_log_lag_seconds",
            "Age of the newest event when this replica's fan-out handed it to subscribers",
            registry=r,
        )
        self.keepalives = Counter(
            "commsgw_keepalives",
            "Managed keepAlives by outcome: sent, skipped (another replica's period), gone "
            "(404: the call ended), expired (Graph's idle limit passed), failed",
            ["outcome"],
            registry=r,
        )
        self.observed_ends = Counter(
            "commsgw_observed_call_ends",
            "Calls the gateway reported ended itself (no termination notification came from "
            "Graph), by reason: graph_not_found, keepalive_deadline_passed",
            ["reason"],
            registry=r,
        )
        self.ready = Gauge("commsgw_ready", "1 while the gateway is ready", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
