"""The application builder: typed arguments in, a Ray Serve application out.

`app` is what a Serve config file's `import_path: batchserve.ray:app` names; its
`args:` are `RayAppArgs`. The deployment options set here (replicas, autoscaling,
actor options) are defaults: a config file's `deployments:` section overrides them
the way it overrides any Serve deployment's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve

from batchserve.ray.replica import BatchserveReplica, ReplicaOptions
from batchserve.server.settings import ServerSettings

DEPLOYMENT_NAME = "batchserve"


class RayAppArgs(BaseModel):
    """What one batchserve application on Ray is: the server's settings, and how Ray runs it."""

    model_config = ConfigDict(extra="forbid")

    #: The same settings as `batchserve serve` (repositories, auth_token, bounds...);
    #: the repositories must be reachable from every node (a shared path or s3://).
    server: ServerSettings
    num_replicas: int | Literal["auto"] | None = Field(
        1, description="None (or 'auto') when autoscaling_config is given"
    )
    autoscaling_config: dict[str, Any] | None = None
    #: What each replica reserves; its layout and thread pools are sized to num_cpus.
    ray_actor_options: dict[str, Any] = Field(default_factory=lambda: {"num_cpus": 1})
    #: Requests Ray hands one replica at once: batchserve batches and bounds its own
    #: queue, so this is well above Ray's default of 5.
    max_ongoing_requests: int = Field(128, gt=0)
    #: Each replica serves its own /metrics on a free port of its node's address.
    replica_metrics: bool = True
    #: How long a new replica may take to load its models before Ray counts it failed.
    ready_timeout_s: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _coherent(self) -> RayAppArgs:
        if not self.server.repositories:
            raise ValueError("server.repositories: give at least one model repository")
        given = {"host", "port"} & self.server.model_fields_set
        if given:
            raise ValueError(
                f"server.{sorted(given)[0]}: on Ray the proxy listens, not the replicas; set "
                "http_options (Serve config) or --host/--port (batchserve serve --ray)"
            )
        if self.server.grpc_port is not None:
            raise ValueError(
                "server.grpc_port: on Ray, requests come through Serve's HTTP proxy; "
                "the replicas serve no gRPC port of their own"
            )
        if self.autoscaling_config is not None and isinstance(self.num_replicas, int):
            raise ValueError("num_replicas: leave it out (or 'auto') with autoscaling_config")
        return self

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments for `serve.deployment`."""
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            "ray_actor_options": dict(self.ray_actor_options),
            "max_ongoing_requests": self.max_ongoing_requests,
            # Ray waits this long for in-flight requests before stopping a replica,
            # the same grace a single server gives them on SIGTERM.
            "graceful_shutdown_timeout_s": self.server.drain_timeout_s,
        }
        if self.autoscaling_config is not None:
            options["autoscaling_config"] = dict(self.autoscaling_config)
        if self.num_replicas is not None:
            options["num_replicas"] = self.num_replicas
        return options


def app(args: RayAppArgs | Mapping[str, Any]) -> serve.Application:
    """Build the application: one deployment whose replicas each run `create_app`.

    From Python, `serve.run(app(RayAppArgs(...)))`; from a Serve config file,
    `import_path: batchserve.ray:app` with `args:` (validated here either way, so a
    bad field is refused at deploy time with its name).
    """
    parsed = args if isinstance(args, RayAppArgs) else RayAppArgs.model_validate(args)
    replica = ReplicaOptions(metrics=parsed.replica_metrics, ready_timeout_s=parsed.ready_timeout_s)
    deployment = serve.deployment(serve.ingress()(BatchserveReplica))
    return deployment.options(**parsed.deployment_options()).bind(parsed.server, replica)
