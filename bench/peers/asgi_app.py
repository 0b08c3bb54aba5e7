"""batchserve's own app under another ASGI server, for bench/asgi_servers.py.

    python bench/peers/asgi_app.py --server uvicorn-h11 --port PORT --repository models-bench
    granian --interface asgi --factory asgi_app:make_app  (BATCHSERVE_BENCH_REPOSITORY set)

The same `create_app` as `batchserve serve`, default settings, one process; only the
HTTP server differs. Nothing here is imported by the package.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from fastapi import FastAPI

from batchserve.server.app import create_app
from batchserve.server.settings import ServerSettings

SERVERS = ("uvicorn-h11", "uvicorn-httptools", "hypercorn", "granian")


def make_app() -> FastAPI:
    """The app for the repository in $BATCHSERVE_BENCH_REPOSITORY (granian's factory)."""
    return create_app(ServerSettings(repositories=(os.environ["BATCHSERVE_BENCH_REPOSITORY"],)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=SERVERS, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--repository", required=True)
    args = parser.parse_args()
    os.environ["BATCHSERVE_BENCH_REPOSITORY"] = args.repository
    if args.server.startswith("uvicorn"):
        import uvicorn

        http = args.server.split("-", 1)[1]
        uvicorn.run(make_app(), host="127.0.0.1", port=args.port, http=http, log_level="warning")
    elif args.server == "hypercorn":
        import uvloop
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{args.port}"]
        config.loglevel = "WARNING"
        stop = asyncio.Event()

        async def run() -> None:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            await serve(make_app(), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

        uvloop.run(run())
    else:
        # Granian runs its worker in a process of its own: exec it so SIGTERM reaches it.
        here = os.path.dirname(os.path.abspath(__file__))
        os.environ["PYTHONPATH"] = os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])
        command = [
            sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
            "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1",
            "--log-level", "warning", "asgi_app:make_app",
        ]  # fmt: skip
        os.execv(sys.executable, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
