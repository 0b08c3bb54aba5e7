"""Serve models over HTTP (the KServe/Triton v2 protocol and /predict) and, with
--grpc-port, the v2 protocol over gRPC.

With no --repository it serves the bundled demo models (and the benchmark
model, once `make` has built it).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from batchserve import flags as flag_types
from batchserve.ray import command as ray_command
from batchserve.repository.bundled import bundled_repositories
from batchserve.server.access_log import AccessLogWriter
from batchserve.server.announce import announce
from batchserve.server.app import begin_stopping_grpc, create_app
from batchserve.server.connections import BoundedHttpProtocol, ConnectionLimits
from batchserve.server.environment import Repeatable, from_environment
from batchserve.server.settings import ServerSettings

log = logging.getLogger("batchserve.server")


def add_repository_arguments(parser: argparse.ArgumentParser) -> None:
    """Where models come from and how they load: shared by `serve` and `validate`."""
    parser.add_argument(
        "--repository",
        action=Repeatable,
        default=None,
        help="model repository: a folder or s3://bucket/prefix (repeatable); "
        "default: the bundled demo models",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where s3:// versions are cached (default: $BATCHSERVE_CACHE_DIR/models or "
        "~/.cache/batchserve/models)",
    )
    parser.add_argument(
        "--s3-endpoint-url",
        default=None,
        help="an S3-compatible endpoint (MinIO, Ceph...); default: $AWS_ENDPOINT_URL or AWS",
    )
    parser.add_argument(
        "--profile-budget",
        type=flag_types.seconds(allow_zero=True),
        default=6.0,
        metavar="SECONDS",
        help="time to measure each model's layout at load (0: no profiling)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repository_arguments(parser)
    parser.add_argument(
        "--poll-interval",
        type=flag_types.seconds(),
        default=None,
        metavar="SECONDS",
        help="watch the repositories: load new versions and swap them in without dropping "
        "requests (default: no polling; POST /v2/repository/models/NAME/load reloads)",
    )
    parser.add_argument(
        "--memory-budget",
        type=flag_types.size,
        default=None,
        metavar="SIZE",
        help="e.g. 400MB, 2GB, 1.5GiB: models load on their first request and the least "
        "recently used are unloaded to stay within it (default: load every model at start)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=flag_types.port, default=8000, help="0 picks a free port ($PORT too)"
    )
    parser.add_argument(
        "--grpc-port",
        type=flag_types.port,
        default=None,
        metavar="PORT",
        help="also serve the v2 protocol over gRPC on PORT (Triton's is 8001; 0 picks a free "
        "port); default: no gRPC",
    )
    parser.add_argument(
        "--auth-token",
        type=flag_types.token,
        default=None,
        help="require 'Authorization: Bearer TOKEN' on every route but the health probes",
    )
    parser.add_argument(
        "--max-body-mb", type=flag_types.positive_float, default=20.0, help="request body bound"
    )
    parser.add_argument(
        "--request-timeout",
        type=flag_types.seconds(),
        default=30.0,
        metavar="SECONDS",
        help="per-request deadline",
    )
    parser.add_argument(
        "--drain-timeout",
        type=flag_types.seconds(allow_zero=True),
        default=20.0,
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may take to finish",
    )
    parser.add_argument(
        "--max-connections",
        type=flag_types.positive_int,
        default=1024,
        help="open connections; past it the one idle the longest is closed",
    )
    parser.add_argument(
        "--decode-threads",
        type=flag_types.positive_int,
        default=None,
        help="threads for large v2 JSON tensors and text (default: cores)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=flag_types.seconds(),
        default=5.0,
        metavar="SECONDS",
        help="how long a connection may wait without a byte of its next request",
    )
    parser.add_argument(
        "--header-timeout",
        type=flag_types.seconds(),
        default=10.0,
        metavar="SECONDS",
        help="from a request's first byte to the end of its headers; then 408",
    )
    parser.add_argument(
        "--body-timeout",
        type=flag_types.seconds(),
        default=60.0,
        metavar="SECONDS",
        help="from the end of the headers to the end of the body, chunked too; then 408",
    )
    parser.add_argument(
        "--max-header-kb",
        type=flag_types.positive_float,
        default=64.0,
        help="request line and headers; past it 431",
    )
    parser.add_argument("--no-url-fetch", action="store_true", help="refuse images by URL")
    parser.add_argument(
        "--url-allow-host",
        action=Repeatable,
        type=flag_types.host_name,
        default=[],
        help="only fetch image URLs of these hosts (repeatable; *.example.com for subdomains)",
    )
    parser.add_argument(
        "--url-allow-network",
        action=Repeatable,
        type=flag_types.network,
        default=[],
        help="only fetch image URLs whose addresses are in these networks (repeatable)",
    )
    parser.add_argument(
        "--url-allow-private", action="store_true", help="fetch from private networks (on-premise)"
    )
    parser.add_argument(
        "--url-allow-loopback", action="store_true", help="fetch from loopback (local use)"
    )
    ray_command.add_arguments(parser)
    from_environment(parser)


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    return ServerSettings(
        repositories=tuple(str(r) for r in args.repository or bundled_repositories()),
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        auth_token=args.auth_token,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        request_timeout_s=args.request_timeout,
        drain_timeout_s=args.drain_timeout,
        max_connections=args.max_connections,
        idle_timeout_s=args.idle_timeout,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        max_header_bytes=int(args.max_header_kb * 1024),
        decode_threads=args.decode_threads,
        profile_budget_s=args.profile_budget,
        url_fetch=not args.no_url_fetch,
        url_allow_hosts=tuple(args.url_allow_host),
        url_allow_networks=tuple(str(n) for n in args.url_allow_network),
        url_allow_private=args.url_allow_private,
        url_allow_loopback=args.url_allow_loopback,
        memory_budget_bytes=args.memory_budget,
        poll_interval_s=args.poll_interval,
        cache_dir=args.cache_dir,
        s3_endpoint_url=args.s3_endpoint_url,
    )


def run(args: argparse.Namespace) -> int:
    _limit_malloc_arenas()
    settings = settings_from_args(args)
    if not settings.repositories:
        print("no model repository: pass --repository PATH", file=sys.stderr)
        return 2
    if args.ray is not None:
        return ray_command.run(args, settings)
    app = create_app(settings)
    # Bind first, so that --port 0 can say which port it got before serving.
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        # uvicorn's httptools protocol with every connection bounded in time and size,
        # and its connection cap answered in JSON (see server/connections.py).
        http=BoundedHttpProtocol,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.drain_timeout_s,  # type: ignore[arg-type]
    )
    config.connection_limits = ConnectionLimits(  # type: ignore[attr-defined]
        max_connections=settings.max_connections,
        idle_timeout_s=settings.idle_timeout_s,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_header_bytes=settings.max_header_bytes,
    )
    server = DrainingServer(config, app)
    access_log = AccessLogWriter()
    access_log.start()
    announce(f"batchserve listening on http://{settings.host}:{port}")
    log.info("serving %s", ", ".join(str(p) for p in settings.repositories))
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the handler that was
    # there before it: make that a no-op so a graceful stop exits 0, not -15.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped_gracefully)
    try:
        server.run(sockets=[sock])
    finally:
        access_log.stop()
    return 0


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before the worker threads start.

    glibc gives threads their own arenas (up to 8 per core), and each keeps freed
    memory: with decode, worker and event-loop threads that was about 20 MB of RSS
    (255 -> 237 MB at 64 clients on MobileNet v1, same throughput). The hot
    allocations are ONNX Runtime's own arena, so fewer malloc arenas cost nothing.
    Same as MALLOC_ARENA_MAX=2; a no-op off glibc.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


class DrainingServer(uvicorn.Server):
    """uvicorn, with a pause between "stop accepting" and "close idle connections".

    uvicorn closes a connection whose request has not been parsed yet as idle; the
    pause lets requests already on the wire be read, so they are answered, not dropped.
    gRPC stops accepting at the same moment as HTTP, and drains alongside it.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for listener in self.servers:
            listener.close()
        begin_stopping_grpc(self._app)
        await asyncio.sleep(0.25)
        await super().shutdown(sockets)


def _stopped_gracefully(signum: int, frame: object) -> None:
    log.info("stopped on signal %d after draining", signum)
