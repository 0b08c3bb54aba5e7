"""Versions taken out of service, finishing the requests they had accepted."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from batchserve.repository.loaded_model import LoadedModel

log = logging.getLogger(__name__)


class Drainer:
    """Owns the retiring versions and the threads that drain them.

    A version swapped out (replaced, evicted, unloaded, removed) stops accepting
    and drains in a thread of its own, so a swap never waits for the requests
    queued on the old version. Until its thread ends the version still holds its
    memory: `models()` lists them for the memory budget, and `wait()` is how a
    load that needs that memory waits for it. `on_drained` is called from the
    draining thread once a version is released.
    """

    def __init__(self, timeout_s: float, on_drained: Callable[[LoadedModel], None]) -> None:
        self.timeout_s = timeout_s
        self._on_drained = on_drained
        self._retiring: dict[int, tuple[LoadedModel, threading.Thread]] = {}
        self._lock = threading.Lock()

    def start(
        self, model: LoadedModel, *, successor: LoadedModel | None, reason: str
    ) -> threading.Thread:
        """Drain `model` in the background; a request that reaches it once it stopped
        accepting is handed to `successor`."""
        # Set before the scheduler stops accepting: a late submit follows it.
        model.successor = successor
        thread = threading.Thread(
            target=self._drain,
            args=(model, reason),
            name=f"unload-{model.name}-v{model.version}",
            daemon=True,
        )
        with self._lock:
            self._retiring[id(model)] = (model, thread)
        thread.start()
        return thread

    def models(self) -> list[LoadedModel]:
        """The versions still draining (they still hold their memory)."""
        with self._lock:
            return [model for model, _ in self._retiring.values()]

    def versions(self, name: str) -> set[int]:
        """The versions of model `name` still draining."""
        return {m.version for m in self.models() if m.name == name}

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for every version draining now (each for up to `timeout_s`, by default
        the drain timeout); False when there was none to wait for."""
        with self._lock:
            threads = [thread for _, thread in self._retiring.values()]
        for thread in threads:
            thread.join(self.timeout_s if timeout_s is None else timeout_s)
        return bool(threads)

    def _drain(self, model: LoadedModel, reason: str) -> None:
        started = time.perf_counter()
        try:
            model.stop(drain=True, timeout=self.timeout_s)
        except Exception:
            log.exception("stopping %s v%d failed", model.name, model.version)
        with self._lock:
            self._retiring.pop(id(model), None)
        self._on_drained(model)
        log.info(
            "model %s v%d unloaded after draining for %.2f s%s",
            model.name,
            model.version,
            time.perf_counter() - started,
            f" ({reason})" if reason else "",
        )
