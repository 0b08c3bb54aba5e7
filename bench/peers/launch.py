"""Start a server in its own process group on a free loopback port, wait for it, stop it by PID.

Servers made of many processes (Gunicorn's workers, LitServe's, Ray's raylet and
actors) are stopped as a tree: SIGTERM to the server, then SIGTERM and SIGKILL to
every process that was in its tree and is still there, each by its PID, never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from batchserve.bench.memory import process_tree


def free_port() -> int:
    """A port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server under test; its output goes to `log`, its tree is tracked for the stop."""

    def __init__(
        self,
        command: Sequence[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(
            self.command,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self._seen: set[int] = {self.process.pid}

    @property
    def pid(self) -> int:
        return self.process.pid

    def tree(self) -> list[int]:
        """The server's processes now; remembered so that the stop can find orphans."""
        pids = process_tree(self.process.pid)
        self._seen.update(pids)
        return pids

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Call `ready` until it says yes; raise with the log's tail if the server dies first."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.tail()}")
            try:
                if ready():
                    self.tree()
                    return
            except Exception:  # not up yet: refused, reset, 503 while loading
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self._log_file.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 30.0) -> None:
        self.tree()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        left = [pid for pid in self._seen if _alive(pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while left and time.monotonic() < deadline:
                left = [pid for pid in left if _alive(pid)]
                time.sleep(0.1)
        self._log_file.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead, only not yet reaped by its parent
