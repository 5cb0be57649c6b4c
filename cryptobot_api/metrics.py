"""Prometheus metrics: request counts and latency by route template, data freshness."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryptobot_core.query.rows import DatasetFreshness, HeartbeatAge

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    """The metrics of one app, in their own registry (several apps can share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cryptobot_api_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cryptobot_api_request_duration_seconds",
            "Time to the response headers, by route template",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.dataset_age = Gauge(
            "cryptobot_dataset_age_seconds",
            "Age of the newest candle per dataset (NaN when empty or store down)",
            ["dataset"],
            registry=self.registry,
        )
        self.dataset_symbols = Gauge(
            "cryptobot_dataset_symbols",
            "Configured symbols with data per dataset",
            ["dataset"],
            registry=self.registry,
        )
        self.heartbeat_age = Gauge(
            "cryptobot_stream_heartbeat_age_seconds",
            "Age of the last stream heartbeat (NaN when none)",
            ["role"],
            registry=self.registry,
        )
        self.store_up = Gauge(
            "cryptobot_store_up",
            "1 when the document store answered the last scrape",
            registry=self.registry,
        )

    def set_freshness(
        self, datasets: dict[str, DatasetFreshness], heartbeats: dict[str, HeartbeatAge | None]
    ) -> None:
        """Update the freshness gauges from the core's freshness and heartbeat reports."""
        self.store_up.set(1)
        for name, info in datasets.items():
            age = info.age_seconds
            self.dataset_age.labels(name).set(float("nan") if age is None else age)
            self.dataset_symbols.labels(name).set(info.symbols)
        for role, beat in heartbeats.items():
            self.heartbeat_age.labels(role).set(float("nan") if beat is None else beat.age_seconds)

    def store_down(self) -> None:
        """Mark the store down and the freshness unknown."""
        self.store_up.set(0)
        for gauge in (self.dataset_age, self.heartbeat_age):
            for labels in list(gauge._metrics):  # the label sets already exported
                gauge.labels(*labels).set(float("nan"))


class MetricsMiddleware:
    """Pure ASGI middleware (keeps streaming responses streaming) recording every request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self.metrics.latency.labels(scope["method"], _route(scope)).observe(
                    time.perf_counter() - started
                )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(scope["method"], _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    # The matched route's template keeps label cardinality bounded (no raw symbols).
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
