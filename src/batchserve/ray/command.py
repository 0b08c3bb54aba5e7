"""`batchserve serve --ray [ADDRESS]`: the same flags, served by Ray Serve replicas.

Without ADDRESS a local Ray instance is started (and stopped at the end); with one
(`auto`, `host:port`, `ray://host:10001`) the application is deployed on that
cluster. The proxy listens on --host/--port; Ctrl-C or SIGTERM deletes the
application, as `serve run` does. For a deployment that outlives the command, use
`serve deploy` with a config file (see the README).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from pydantic import ValidationError

from batchserve.server.announce import announce
from batchserve.server.settings import ServerSettings

log = logging.getLogger("batchserve.ray")

APP_NAME = "batchserve"
LOCAL = "local"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray Serve (pip install 'batchserve[ray]')")
    group.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL,
        default=None,
        metavar="ADDRESS",
        help="serve on Ray Serve replicas: a cluster's address (auto, host:port, "
        "ray://host:10001), or none to start a local Ray instance",
    )
    group.add_argument("--ray-replicas", type=int, default=None, metavar="N", help="default 1")
    group.add_argument(
        "--ray-autoscaling",
        type=_json_object,
        default=None,
        metavar="JSON",
        help='Serve autoscaling_config, e.g. \'{"min_replicas": 1, "max_replicas": 4}\'',
    )
    group.add_argument(
        "--ray-actor-options",
        type=_json_object,
        default=None,
        metavar="JSON",
        help='each replica\'s ray_actor_options (default {"num_cpus": 1})',
    )
    group.add_argument("--ray-num-cpus", type=float, default=None, help="sizes the layout")
    group.add_argument("--ray-num-gpus", type=float, default=None)
    group.add_argument(
        "--ray-max-ongoing-requests", type=int, default=128, metavar="N", help="per replica"
    )


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def app_args(args: argparse.Namespace, settings: ServerSettings) -> Any:
    """The builder's arguments from the serve flags (the proxy takes --host and --port)."""
    from batchserve.ray.application import RayAppArgs

    actor_options = dict(args.ray_actor_options or {"num_cpus": 1})
    if args.ray_num_cpus is not None:
        actor_options["num_cpus"] = args.ray_num_cpus
    if args.ray_num_gpus is not None:
        actor_options["num_gpus"] = args.ray_num_gpus
    replicas = args.ray_replicas
    if replicas is None:
        replicas = None if args.ray_autoscaling is not None else 1
    return RayAppArgs(
        server=ServerSettings(**settings.model_dump(exclude={"host", "port"})),
        num_replicas=replicas,
        autoscaling_config=args.ray_autoscaling,
        ray_actor_options=actor_options,
        max_ongoing_requests=args.ray_max_ongoing_requests,
    )


def run(args: argparse.Namespace, settings: ServerSettings) -> int:
    local = args.ray == LOCAL
    loopback = local and _is_loopback(settings.host)
    if loopback:
        # A local instance behind a loopback proxy keeps all of Ray on loopback too: the
        # node's address, and Ray's own idea of "this machine's address", which it reads
        # from this variable once, at import (on Linux it otherwise picks the outward one).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray import serve

    from batchserve.ray.application import app

    try:
        built = app(app_args(args, settings))
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"batchserve serve --ray: {first['msg']}", file=sys.stderr)
        return 2
    port = settings.port or _free_port(settings.host)
    if local:
        ray.init(
            address=LOCAL,
            include_dashboard=False,
            _node_ip_address="127.0.0.1" if loopback else None,
        )
    else:
        ray.init(address=args.ray)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": settings.host, "port": port})
        serve.run(built, name=APP_NAME, route_prefix="/")
        announce(f"batchserve listening on http://{settings.host}:{port} (Ray Serve)")
        stop.wait()
        log.info("stopping: deleting the Ray Serve application")
        serve.delete(APP_NAME)
        if local:
            serve.shutdown()
    finally:
        ray.shutdown()
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
