"""Loading a version and swapping it in; taking versions out of service."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

from batchserve.errors import BatchserveError, ModelNotReady
from batchserve.repository.budget import MemoryBudget, NoRoom
from batchserve.repository.drainer import Drainer
from batchserve.repository.loaded_model import LoadedModel
from batchserve.repository.loader import load_model_version, predict_resident_bytes
from batchserve.repository.reconcile import Action, Load, Recovered, Retire, Settle
from batchserve.repository.records import ModelRecord
from batchserve.repository.states import StateTable
from batchserve.repository.store import StoreUnavailable
from batchserve.scheduling.workers import BatchObserver
from batchserve.units import format_size

log = logging.getLogger(__name__)

#: Called after every runtime call with (model, version, rows in the batch, seconds).
ModelBatchObserver = Callable[[str, int, int, float], None]


class HotSwap:
    """Loads versions and swaps them in and out of service, on the manager's loader thread.

    A version is loaded and warmed up while the one it replaces serves; then the
    model's served dictionary is replaced under the manager's `lock` (which request
    threads read it under) and the old version drains with the new one as its
    successor. With a memory budget, the least recently used versions of other
    models are unloaded first to make room. Every load and unload is counted, by
    outcome and by cause, for the metrics.
    """

    def __init__(
        self,
        *,
        lock: threading.RLock,
        records: Mapping[str, ModelRecord],
        states: StateTable,
        budget: MemoryBudget | None,
        drain_timeout_s: float,
        on_batch: ModelBatchObserver | None = None,
        profile_budget_s: float = 6.0,
    ) -> None:
        self._lock = lock
        self._records = records
        self._states = states
        self._budget = budget
        self._on_batch = on_batch
        self._profile_budget_s = profile_budget_s
        self.drainer = Drainer(drain_timeout_s, self._drained)
        self.loads: Counter[tuple[str, str]] = Counter()  # (model, "ok" | "failed")
        self.unloads: Counter[tuple[str, str]] = Counter()  # (model, why)
        self._closed = False

    def close(self) -> None:
        """A load that finishes from now on is stopped, not swapped in."""
        with self._lock:
            self._closed = True

    def apply(self, record: ModelRecord, action: Action) -> None:
        """Carry out one of `reconcile.plan`'s actions; a failed load raises ModelNotReady."""
        if isinstance(action, Load):
            self.load(record, action.version)
        elif isinstance(action, Settle):
            self._states.settling(record.name, action.version)
        elif isinstance(action, Recovered):
            with self._lock:
                record.failed.pop(action.version, None)
                self._states.ready(record.name, action.version)
        elif isinstance(action, Retire):
            successor = next((v for v in action.successors if v in record.served), None)
            if successor is not None:  # else it keeps serving: nothing replaces it yet
                self.retire(
                    record,
                    action.version,
                    why="replaced",
                    reason=f"unloaded: version {successor} serves in its place",
                    successor=record.served[successor],
                )

    def load(self, record: ModelRecord, version: int) -> LoadedModel:
        """Load one version and swap it in; raises ModelNotReady with the reason."""
        name, source, config = record.name, record.source(version), record.config
        assert config is not None
        reloading = version in record.served
        if not reloading:
            self._states.loading(name, version)
        log.info("model %s v%d: %s", name, version, "reloading" if reloading else "loading")
        started = time.perf_counter()
        try:
            version_dir = record.store.fetch(name, version)
            model_dir = record.store.model_dir(name)
            if self._budget is not None:
                self._make_room(predict_resident_bytes(config, version_dir), keep=name)
            model = load_model_version(
                name,
                model_dir,
                version,
                config,
                version_dir=version_dir,
                on_batch=self._observer(name, version),
                profile_budget_s=self._profile_budget_s,
                source=source,
            )
        except Exception as exc:
            self._load_failed(record, version, exc)
            verb = "cannot be loaded" if isinstance(exc, NoRoom) else "failed to load"
            raise ModelNotReady(f"model {name!r} version {version} {verb}: {exc}") from exc
        model.load_seconds = time.perf_counter() - started  # the fetch included
        with self._lock:
            if self._closed:
                model.stop(drain=False, timeout=1)
                raise ModelNotReady("the server is shutting down")
            old = record.served.get(version)
            record.served = {**record.served, version: model}
            record.failed.pop(version, None)
            self._states.ready(name, version)
            if self._budget is not None:
                self._budget.used(name, version)
            self.loads[(name, "ok")] += 1
        log.info(
            "model %s v%d ready in %.2f s (about %s)",
            name,
            version,
            model.load_seconds,
            format_size(model.resident_bytes),
        )
        if old is not None:
            self._drain(old, successor=model, why="replaced", reason="")
        if self._budget is not None:
            try:  # the real layout may hold more than predicted
                self._make_room(0, keep=name, count_draining=False)
            except NoRoom as exc:
                log.warning("memory budget exceeded after loading %s v%d: %s", name, version, exc)
        return model

    def retire(
        self,
        record: ModelRecord,
        version: int,
        *,
        why: str,
        reason: str,
        successor: LoadedModel | None = None,
        wait: bool = False,
    ) -> None:
        """Stop serving `version`: swap it out now, drain and release it in the background
        (or here, with `wait`, when its memory must be free before going on)."""
        with self._lock:
            model = record.served.get(version)
            if model is None:
                return
            record.served = {v: m for v, m in record.served.items() if v != version}
        thread = self._drain(model, successor=successor, why=why, reason=reason)
        if wait:
            thread.join()

    def retire_all(self, record: ModelRecord, *, why: str, reason: str, wait: bool) -> None:
        for version in sorted(record.served):
            self.retire(record, version, why=why, reason=reason, wait=wait)

    def _load_failed(self, record: ModelRecord, version: int, exc: Exception) -> None:
        name = record.name
        if isinstance(exc, BatchserveError | NoRoom):
            log.error("model %s v%d not loaded: %s", name, version, exc)
        else:
            log.exception("model %s v%d not loaded", name, version)
        transient = isinstance(exc, StoreUnavailable) or (
            isinstance(exc, NoRoom) and not exc.permanent
        )
        with self._lock:
            if not transient:  # these files failed: tried again once they change
                record.failed[version] = record.source(version)
            self.loads[(name, "failed")] += 1
            if version in record.served:  # a reload failed: the loaded one keeps serving
                self._states.reload_failed(name, version, str(exc))
            else:
                self._states.load_failed(name, version, str(exc))

    def _drain(
        self, model: LoadedModel, *, successor: LoadedModel | None, why: str, reason: str
    ) -> threading.Thread:
        with self._lock:
            if successor is None or successor.version != model.version:
                self._states.unloading(model.name, model.version, reason)
            self.unloads[(model.name, why)] += 1
        return self.drainer.start(model, successor=successor, reason=reason)

    def _drained(self, model: LoadedModel) -> None:
        with self._lock:
            gone = model.name not in self._records
            self._states.drained(model.name, model.version, forget=gone)

    def _make_room(self, need: int, *, keep: str, count_draining: bool = True) -> None:
        assert self._budget is not None
        self._budget.make_room(
            need,
            keep=keep,
            served=self._served,
            drainer=self.drainer,
            unload=lambda name, version: self._evict(name, version, keep),
            count_draining=count_draining,
        )

    def _evict(self, name: str, version: int, keep: str) -> None:
        log.info("unloading %s v%d (least recently used) to make room for %s", name, version, keep)
        reason = f"unloaded to make room for {keep!r} (memory budget); loads again on request"
        self.retire(self._records[name], version, why="evicted", reason=reason, wait=True)

    def _served(self) -> list[LoadedModel]:
        with self._lock:
            return [m for r in self._records.values() for m in r.served.values()]

    def _observer(self, name: str, version: int) -> BatchObserver | None:
        observe = self._on_batch
        if observe is None:
            return None
        return lambda rows, seconds: observe(name, version, rows, seconds)
