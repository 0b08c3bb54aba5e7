"""Start the real `batchserve serve` in a subprocess on a free loopback port, and stop it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_REPOSITORY = PROJECT_ROOT / "models"
SAMPLES = PROJECT_ROOT / "samples"


class LiveServer:
    """A running server process; `url` is its base URL on 127.0.0.1, and with `grpc`
    `grpc_address` is its gRPC `127.0.0.1:PORT` (both on free ports)."""

    def __init__(
        self,
        repositories: Sequence[Path],
        *args: str,
        env: dict[str, str] | None = None,
        ready_timeout: float = 90.0,
        wait_ready: bool = True,
        grpc: bool = False,
    ) -> None:
        command = [sys.executable, "-m", "batchserve", "serve", "--port", "0"]
        if grpc:
            command += ["--grpc-port", "0"]
        for repo in repositories:
            command += ["--repository", str(repo)]
        command += ["--profile-budget", "1", *args]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._port_found = threading.Event()
        self._grpc_found = threading.Event()
        self.url = ""
        self.grpc_address = ""
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        if not self._port_found.wait(30) or (grpc and not self._grpc_found.wait(30)):
            self.stop()
            raise RuntimeError("server did not start:\n" + self.output)
        if wait_ready:
            self.wait_ready(ready_timeout)

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                self._port_found.set()
            match = re.search(r"grpc listening on (\S+)", line)
            if match:
                self.grpc_address = match.group(1)
                self._grpc_found.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float, headers: dict[str, str] | None = None) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError("server exited:\n" + self.output)
            try:
                r = httpx.get(f"{self.url}/v2/health/ready", headers=headers, timeout=2)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server not ready in time:\n" + self.output)

    def terminate(self) -> None:
        """Send SIGTERM (a graceful stop) without waiting."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)
        finally:
            self._reader.join(5)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
