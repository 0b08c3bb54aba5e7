"""Prometheus metrics, in a registry of the app's own.

Queue depth and busy workers are read from the schedulers at scrape time, so
the request path never updates a gauge for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from batchserve.repository.loaded_model import LoadedModel

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)


class _SchedulerCollector(Collector):
    def __init__(self, models: Callable[[], Iterable[LoadedModel]]) -> None:
        self._models = models

    def collect(self) -> Iterable[Metric]:
        queued = GaugeMetricFamily(
            "batchserve_queue_depth", "Requests waiting in the queue", labels=["model", "version"]
        )
        busy = GaugeMetricFamily(
            "batchserve_instances_busy", "Workers running a batch now", labels=["model", "version"]
        )
        workers = GaugeMetricFamily(
            "batchserve_workers", "Workers of the model's scheduler", labels=["model", "version"]
        )
        resident = GaugeMetricFamily(
            "batchserve_model_resident_bytes",
            "Estimated memory held by a loaded model version",
            labels=["model", "version"],
        )
        for model in self._models():
            labels = [model.name, str(model.version)]
            stats = model.built.scheduler.stats()
            queued.add_metric(labels, stats.queued)
            busy.add_metric(labels, stats.busy_workers)
            workers.add_metric(labels, stats.workers)
            resident.add_metric(labels, model.resident_bytes)
        yield from (queued, busy, workers, resident)


class ServerMetrics:
    """The metrics the server records, by model, version, route and status."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only double the scrape
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "batchserve_requests",
            "HTTP requests by model, version, route and status",
            ["model", "version", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "batchserve_request_seconds",
            "Whole request latency",
            ["model", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "batchserve_stage_seconds",
            "Where a request's time went: queue, decode, inference",
            ["model", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "batchserve_batch_size",
            "Rows per runtime call",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.image_bytes = Histogram(
            "batchserve_image_bytes",
            "Size of the encoded images received",
            ["model"],
            buckets=(1e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7),
            registry=r,
        )

    def watch_models(self, models: Callable[[], Iterable[LoadedModel]]) -> None:
        self.registry.register(_SchedulerCollector(models))

    def observe_batch(self, model: str, version: int, rows: int, seconds: float) -> None:
        self.batch_size.labels(model, str(version)).observe(rows)
