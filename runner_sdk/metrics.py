"""Prometheus metrics, one registry per app (so several apps can live in one test process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

CONTENT_TYPE = "text/plain; version=1.0.0; charset=utf-8"


class Metrics:
    def __init__(self, version: str, pipeline: str, model_id: str):
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        # Name and labels kept from ai-runner (contract 3.4).
        Gauge("version", "Runner version", ["app", "version"], registry=r).labels("ai-runner", version).set(1.0)
        labels = {"pipeline": pipeline, "model_id": model_id}
        self.state = Gauge("runner_ready", "1 once the model is loaded and warm", registry=r)
        self.load_phase = Gauge("runner_load_phase_seconds", "Cold-load wall seconds by phase", ["phase"],
                                registry=r)
        self.warm_vram = Gauge("runner_warm_vram_bytes", "Device memory held after load", ["kind"], registry=r)
        self.peak_vram = Gauge("runner_peak_vram_bytes", "Largest per-request device memory peak", ["kind"],
                               registry=r)
        self.latency = Histogram(
            "runner_request_duration_seconds", "Generate request time, queue included", ["route"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.stage = Histogram("runner_request_stage_seconds", "Request time by stage (queue, runner stages)",
                               ["stage"], registry=r,
                               buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120))
        self.in_flight = Gauge("runner_in_flight", "Requests executing", registry=r)
        self.queued = Gauge("runner_queued", "Requests waiting for a slot", registry=r)
        self.responses = Counter("runner_responses", "Responses by route and status", ["route", "status"],
                                 registry=r)
        Gauge("runner_info", "Pipeline and model served", list(labels), registry=r).labels(**labels).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StatusCounter:
    """Pure ASGI middleware counting the generate route's responses by status for /metrics
    (BaseHTTPMiddleware would break disconnect detection and streaming). An answer to a client that went
    away (the request path sets `scope["runner_sdk.outcome"] = "disconnected"`) is counted under the status
    label "disconnected", not as a 500."""

    def __init__(self, app, metrics: Metrics, path: str):
        self.app, self.metrics, self.path = app, metrics, path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/") or "/"

        async def counting_send(message):
            if message["type"] == "http.response.start" and path == self.path:
                status = scope.get("runner_sdk.outcome") or str(message["status"])
                self.metrics.responses.labels(path, status).inc()
            await send(message)

        await self.app(scope, receive, counting_send)
