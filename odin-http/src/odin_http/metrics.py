"""Prometheus metrics of the gateway: requests by route and status, latency, and the core connection."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "odin_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "odin_http_request_seconds",
            "Time to answer an HTTP request (streams: time to the first byte)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.streams = Gauge("odin_http_open_streams", "Server-sent event streams open", registry=self.registry)
        self.logins = Counter("odin_http_logins", "Login attempts", ["result"], registry=self.registry)
        self.core_up = Gauge("odin_http_core_up", "1 when the core answered the last probe", registry=self.registry)
        self.runs_started = Counter(
            "odin_http_runs_started", "Runs started through the gateway", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
