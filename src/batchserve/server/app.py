"""The ASGI app: routes, error handlers, middleware, and the models' life cycle."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

import batchserve
from batchserve.machine import cpu_count
from batchserve.repository.manager import ModelManager
from batchserve.repository.stores import open_store
from batchserve.server.announce import announce
from batchserve.server.context import AppContext, fetch_settings
from batchserve.server.errors import EXCEPTION_HANDLERS, client_status, error_response
from batchserve.server.metrics import ServerMetrics
from batchserve.server.middleware import RequestContextMiddleware
from batchserve.server.openai import router as openai_router
from batchserve.server.routes import embed, generate, page, predict, repository, v2
from batchserve.server.settings import ServerSettings

log = logging.getLogger("batchserve.server")


def build_manager(settings: ServerSettings, metrics: ServerMetrics | None = None) -> ModelManager:
    """The model manager over the settings' repositories, as `serve` runs it."""
    return ModelManager(
        [
            open_store(r, cache_dir=settings.cache_dir, endpoint_url=settings.s3_endpoint_url)
            for r in settings.repositories
        ],
        on_batch=metrics.observe_batch if metrics is not None else None,
        profile_budget_s=settings.profile_budget_s,
        memory_budget_bytes=settings.memory_budget_bytes,
        drain_timeout_s=settings.drain_timeout_s,
    )


def create_app(settings: ServerSettings, manager: ModelManager | None = None) -> FastAPI:
    """Build the app. Models load in the background once it starts: liveness answers at
    once, readiness only when loading is done."""
    metrics = ServerMetrics()
    manager = manager or build_manager(settings, metrics)
    metrics.watch_models(manager.loaded)
    metrics.watch_repository(manager.stats)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=_load, name="model-loader", daemon=True)
        loader.start()
        if settings.grpc_port is not None:
            await _start_grpc()
        try:
            yield
        finally:
            # uvicorn has stopped accepting and finished the requests in flight; gRPC
            # stopped accepting at the same time (begin_stopping_grpc) and drains here.
            if ctx.grpc_server is not None:
                await ctx.grpc_server.stop(settings.drain_timeout_s)
            manager.stop(drain=True, timeout=settings.drain_timeout_s)
            ctx.cpu_pool.shutdown(wait=False, cancel_futures=True)
            log.info("stopped")

    def _load() -> None:
        try:
            manager.load_all()
        except Exception:
            log.exception("loading the repository failed")
        finally:
            if settings.poll_interval_s is not None:
                manager.start_polling(settings.poll_interval_s)
            ctx.loaded.set()
            states = manager.index()
            log.info(
                "ready: %s",
                ", ".join(f"{s.name} v{s.version} {s.state}" for s in states) or "no models",
            )

    async def _start_grpc() -> None:
        from batchserve.server.grpc.server import GrpcServer  # only when switched on

        assert settings.grpc_port is not None
        server = GrpcServer(ctx, settings.host, settings.grpc_port)
        await server.start()
        ctx.grpc_server = server
        announce(f"batchserve grpc listening on {server.address}")

    app = FastAPI(
        title="batchserve",
        version=batchserve.__version__,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
    cpu_threads = settings.decode_threads or cpu_count()
    fetch_limits, fetch_policy = fetch_settings(settings)
    ctx = AppContext(
        settings=settings,
        manager=manager,
        metrics=metrics,
        cpu_threads=cpu_threads,
        cpu_pool=ThreadPoolExecutor(cpu_threads, thread_name_prefix="cpu"),
        fetch_limits=fetch_limits,
        fetch_policy=fetch_policy,
    )
    app.state.context = ctx
    for routes in (v2, predict, repository, generate, embed):
        # The routes themselves, not `include_router`: FastAPI 0.165 wraps an included
        # router in a layer that is matched again on every request (6 % of the event
        # loop's time per request on the demo model). Tags are already on each route.
        app.router.routes.extend(routes.router.routes)
    app.include_router(openai_router)
    page.mount(app)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail), path=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        path = request.url.path
        return error_response(client_status(path, 422), str(exc), path=path)

    @app.get("/metrics", tags=["metrics"])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestContextMiddleware, metrics=metrics, auth_token=settings.auth_token)
    return app


def begin_stopping_grpc(app: FastAPI) -> None:
    """Have the app's gRPC server (if any) refuse new calls now and drain those in flight,
    while HTTP drains: called when a graceful stop begins (the lifespan awaits the end)."""
    ctx: AppContext = app.state.context
    if ctx.grpc_server is not None:
        ctx.grpc_server.begin_stop(ctx.settings.drain_timeout_s)
