"""One Ray Serve replica: batchserve's own ASGI app, sized to what Ray reserved for it."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import ray
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from ray import serve

from batchserve.machine import CPUS_ENV
from batchserve.ray.replica_app import MetricsEndpoint, ReplicaIdentity, ReplicaMiddleware
from batchserve.server.app import create_app
from batchserve.server.settings import ServerSettings

log = logging.getLogger("batchserve.ray")

#: Prometheus HTTP service discovery: every live replica's own /metrics address.
METRICS_TARGETS_PATH = "/ray/metrics-targets"


@dataclass(frozen=True)
class ReplicaOptions:
    """How a replica runs beside its app; sent to every replica with the server settings."""

    metrics: bool = True
    ready_timeout_s: float = 600.0
    broadcast_timeout_s: float = 10.0


def replica_cpus(assigned: dict[str, float]) -> int:
    """Whole cores for the layout from the CPUs Ray reserved (0.5 -> 1, 2.5 -> 2)."""
    return max(1, math.floor(assigned.get("CPU", 1.0)))


class BatchserveReplica:
    """A replica: `create_app(settings)` as its ingress, which Ray's proxy sends requests to.

    The layout and thread pools see the replica's `num_cpus` (through $BATCHSERVE_CPUS,
    unless the runtime_env already sets it), not the node's cores; GPUs reach the
    models through the CUDA_VISIBLE_DEVICES Ray sets for `num_gpus`.
    """

    def __init__(self, settings: ServerSettings, options: ReplicaOptions) -> None:
        runtime = ray.get_runtime_context()
        os.environ.setdefault(CPUS_ENV, str(replica_cpus(runtime.get_assigned_resources())))
        context = serve.get_replica_context()
        self._settings = settings
        self._options = options
        self._identity = ReplicaIdentity(
            replica=context.replica_tag,
            node_id=runtime.get_node_id(),
            node_ip=ray.util.get_node_ip_address(),
        )
        self._metrics = MetricsEndpoint(self._identity.node_ip) if options.metrics else None
        log.info(
            "replica %s on node %s: %s cores",
            context.replica_tag,
            self._identity.node_id[:12],
            os.environ[CPUS_ENV],
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        app = create_app(self._settings)
        app.add_api_route(METRICS_TARGETS_PATH, self._metrics_targets, methods=["GET"])
        app.add_middleware(
            ReplicaMiddleware,
            identity=self._identity,
            auth_token=self._settings.auth_token,
            ready_timeout_s=self._options.ready_timeout_s,
            metrics=self._metrics,
        )
        return app

    def metrics_target(self) -> dict[str, Any] | None:
        """This replica's entry in Prometheus' HTTP service discovery (None: not serving)."""
        if self._metrics is None or self._metrics.address is None:
            return None
        return {
            "targets": [self._metrics.address],
            "labels": {"replica": self._identity.replica, "node_id": self._identity.node_id},
        }

    async def _metrics_targets(self) -> JSONResponse:
        context = serve.get_replica_context()
        handle = serve.get_deployment_handle(context.deployment, context.app_name)
        answers = await handle.broadcast("metrics_target").results_async(
            timeout_s=self._options.broadcast_timeout_s, return_exceptions=True
        )
        return JSONResponse([a for a in answers if isinstance(a, dict)])
