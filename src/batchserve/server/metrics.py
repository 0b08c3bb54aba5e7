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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from batchserve.repository.loaded_model import LoadedModel
from batchserve.repository.states import STATES, RepositoryStats

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
TOKEN_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


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
        load = GaugeMetricFamily(
            "batchserve_model_load_seconds",
            "How long the loaded version took to fetch, load and warm up",
            labels=["model", "version"],
        )
        occupancy = GaugeMetricFamily(
            "batchserve_batch_occupancy",
            "Continuous batching: running sequences / max_batch_size, now",
            labels=["model", "version"],
        )
        for model in self._models():
            labels = [model.name, str(model.version)]
            stats = model.stats()
            queued.add_metric(labels, stats.queued)
            busy.add_metric(labels, stats.busy_workers)
            workers.add_metric(labels, stats.workers)
            resident.add_metric(labels, model.resident_bytes)
            load.add_metric(labels, model.load_seconds)
            if stats.sequences is not None and stats.max_sequences:
                occupancy.add_metric(labels, stats.sequences / stats.max_sequences)
        yield from (queued, busy, workers, resident, load, occupancy)


class _RepositoryCollector(Collector):
    """Each version's state, loads and unloads, and the memory budget, read at scrape time."""

    def __init__(self, stats: Callable[[], RepositoryStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        stats = self._stats()
        state = GaugeMetricFamily(
            "batchserve_model_state",
            "1 for the state a model version is in: READY, LOADING, UNLOADING, UNAVAILABLE",
            labels=["model", "version", "state"],
        )
        for s in stats.states:
            version = str(s.version) if s.version else ""  # "": the model as a whole
            for name in STATES:
                state.add_metric([s.name, version, name], float(s.state == name))
        loads = CounterMetricFamily(
            "batchserve_model_loads", "Version loads by outcome", labels=["model", "outcome"]
        )
        for (model, outcome), count in sorted(stats.loads.items()):
            loads.add_metric([model, outcome], count)
        unloads = CounterMetricFamily(
            "batchserve_model_unloads",
            "Version unloads by cause: replaced, evicted, requested, removed",
            labels=["model", "cause"],
        )
        for (model, cause), count in sorted(stats.unloads.items()):
            unloads.add_metric([model, cause], count)
        used = GaugeMetricFamily(
            "batchserve_models_resident_bytes",
            "Estimated memory held by all loaded versions, as the memory budget counts it",
        )
        used.add_metric([], stats.used_bytes)
        yield from (state, loads, unloads, used)
        if stats.budget_bytes is not None:
            budget = GaugeMetricFamily("batchserve_memory_budget_bytes", "--memory-budget")
            budget.add_metric([], stats.budget_bytes)
            yield budget


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
        self.grpc_requests = Counter(
            "batchserve_grpc_requests",
            "gRPC calls by model, version, method and status code",
            ["model", "version", "method", "code"],
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

        # Text generation (continuous batching); tokens/s is rate(generated_tokens).
        self.generated_tokens = Counter(
            "batchserve_generated_tokens", "Tokens generated", ["model"], registry=r
        )
        self.time_to_first_token = Histogram(
            "batchserve_time_to_first_token_seconds",
            "From a generation's arrival to its first token",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.time_per_output_token = Histogram(
            "batchserve_time_per_output_token_seconds",
            "Mean time between a generation's tokens after the first",
            ["model"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )

    def watch_models(self, models: Callable[[], Iterable[LoadedModel]]) -> None:
        self.registry.register(_SchedulerCollector(models))

    def watch_repository(self, stats: Callable[[], RepositoryStats]) -> None:
        self.registry.register(_RepositoryCollector(stats))

    def observe_batch(self, model: str, version: int, rows: int, seconds: float) -> None:
        self.batch_size.labels(model, str(version)).observe(rows)
