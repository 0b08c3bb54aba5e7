"""The Procfile's web process, run by a real Procfile runner (honcho) as a Heroku-style
platform runs it: `PORT` set by the platform, the configuration from config vars."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.live_server import DEMO_REPOSITORY, PROJECT_ROOT, SAMPLES

HONCHO = Path(sys.executable).with_name("honcho")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_procfile_web_process_serves_on_the_platform_port(tmp_path):
    port = _free_port()
    token = "config-var-token"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATCHSERVE_")},
        # What the platform sets, and what the README tells the user to set as config vars.
        "PORT": str(port),
        "BATCHSERVE_REPOSITORY": str(DEMO_REPOSITORY),
        "BATCHSERVE_AUTH_TOKEN": token,
        # The tests' own: loopback only, a short profile, a private cache.
        "BATCHSERVE_HOST": "127.0.0.1",
        "BATCHSERVE_PROFILE_BUDGET": "1",
        "BATCHSERVE_CACHE_DIR": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    runner = subprocess.Popen(
        [str(HONCHO), "--procfile", str(PROJECT_ROOT / "Procfile"), "start", "web"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert runner.poll() is None, runner.stdout.read() if runner.stdout else ""
            try:
                # The platform's health check carries no token.
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the web process was not ready in 90 s"
            time.sleep(0.2)
        image = (SAMPLES / "red_circle.jpg").read_bytes()
        headers = {"content-type": "image/jpeg", "authorization": f"Bearer {token}"}
        response = httpx.post(f"{url}/v1/models/shapes/predict", content=image, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["label"] == "red circle"
        assert httpx.post(f"{url}/v1/models/shapes/predict", content=image).status_code == 401
    finally:
        # A platform stops a dyno with SIGTERM to the process group; honcho passes it on.
        os.killpg(runner.pid, signal.SIGTERM)
        output, _ = runner.communicate(timeout=60)
    assert "stopped on signal 15 after draining" in output, output
