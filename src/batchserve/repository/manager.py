"""The model manager: which versions are loaded, which one serves a request, and every
change to that (load, hot swap, unload, the memory budget).

Concurrency: every change runs on one loader thread, one at a time, so two loads
never race for the same memory or the same version; request threads and the
event loop only read, under a lock held for dictionary look-ups. A request that
needs a model that is not loaded gets a `Future` (`acquire`), never a blocked
thread.

Hot swap (`swap.HotSwap`): a new version (or a reload of a changed one) is
loaded and warmed up while the old one serves; then the served dictionary is
replaced under the lock, and the old version is told its successor before its
scheduler stops accepting. It drains what it had accepted in a background
thread; a caller that took the old version before the swap and submits after is
sent on to the successor by `LoadedModel.submit`. No request fails because of a swap.

Where the parts live: `stores` lists the stores as one repository, `reconcile`
decides what a scan changes (pure), `records` holds what is known of each model,
`states` is the one writer of what the index reports, `swap` loads versions and
swaps them in and out, `drainer` owns the versions on their way out, `budget`
chooses what to unload for memory. This module holds the API, the lock and the
loader thread, and runs each change there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from batchserve.errors import BatchserveError, ModelNotFound, ModelNotReady
from batchserve.repository.budget import MemoryBudget
from batchserve.repository.futures import done, follow
from batchserve.repository.loaded_model import LoadedModel
from batchserve.repository.poller import RepositoryPoller
from batchserve.repository.reconcile import plan
from batchserve.repository.records import ModelRecord
from batchserve.repository.states import (
    MODEL,
    NOT_LOADED_YET,
    UNAVAILABLE,
    UNLOADED_BY_REQUEST,
    RepositoryStats,
    StateTable,
    VersionState,
)
from batchserve.repository.store import ModelListing, ModelStore
from batchserve.repository.stores import Scan, scan_stores
from batchserve.repository.swap import HotSwap, ModelBatchObserver

log = logging.getLogger(__name__)

T = TypeVar("T")


class ModelManager:
    """Loads the models of one or more stores and answers which version serves a request.

    Without a memory budget every model loads at start (`load_all`). With one
    (`memory_budget_bytes`), models load on their first request (`acquire`) and
    the least recently used are unloaded to make room. A model or version that
    fails to load is reported in `index()` with the reason; the others load,
    and a version already serving keeps serving.
    """

    def __init__(
        self,
        stores: Sequence[ModelStore],
        *,
        on_batch: ModelBatchObserver | None = None,
        profile_budget_s: float = 6.0,
        memory_budget_bytes: int | None = None,
        drain_timeout_s: float = 20.0,
    ) -> None:
        self._stores = list(stores)
        self.memory_budget_bytes = memory_budget_bytes
        self._budget = (
            MemoryBudget(memory_budget_bytes) if memory_budget_bytes is not None else None
        )
        self._models: dict[str, ModelRecord] = {}
        self._states = StateTable()
        self._pending: dict[tuple[str, int], Future[LoadedModel]] = {}
        self._lock = threading.RLock()
        self._swap = HotSwap(
            lock=self._lock,
            records=self._models,
            states=self._states,
            budget=self._budget,
            drain_timeout_s=drain_timeout_s,
            on_batch=on_batch,
            profile_budget_s=profile_budget_s,
        )
        self._drainer = self._swap.drainer
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._poller: RepositoryPoller | None = None
        self._scanned = threading.Event()
        self._closed = False

    @property
    def lazy(self) -> bool:
        """Models load on their first request: the mode a memory budget implies."""
        return self._budget is not None

    # -- life cycle (blocking; never call these from the event loop) -----------------

    def load_all(self) -> None:
        """Scan the stores; without a budget, load every model's versions too."""
        self._on_loader(self._refresh, initial=True).result()

    def poll(self) -> None:
        """Scan the stores once and apply what changed: new versions are loaded and
        swapped in, versions gone from the store or the policy are unloaded."""
        self._on_loader(self._refresh, initial=False).result()

    def start_polling(self, interval_s: float) -> None:
        if self._poller is None:
            self._poller = RepositoryPoller(self.poll, interval_s)
            self._poller.start()

    def load(self, name: str, store: ModelStore | None = None) -> None:
        """Load one model now; a failure is reported in `index()` (and by `get`), not
        raised, as at start-up."""
        try:
            self.request_load(name, store).result()
        except BatchserveError as exc:
            log.error("model %s not loaded: %s", name, exc)

    def unload(self, name: str) -> None:
        self.request_unload(name).result()

    def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop polling and loading, then every version (finishing accepted requests)."""
        if self._poller is not None:
            self._poller.stop(timeout=5)
        with self._lock:
            self._closed = True
        self._swap.close()
        self._loader.shutdown(wait=False, cancel_futures=True)
        for model in self.loaded():
            model.stop(drain=drain, timeout=timeout)
        self._drainer.wait(timeout)

    # -- asynchronous requests (for the event loop: they return at once) -------------

    def request_load(self, name: str, store: ModelStore | None = None) -> Future[None]:
        """Load (or reload) `name` as its store has it now, whatever the budget mode.
        The future fails with ModelNotFound or ModelNotReady (with every reason)."""
        return self._on_loader(self._load_by_request, name, store)

    def request_unload(self, name: str) -> Future[None]:
        """Unload every version of `name`; it stays unloaded until loaded again."""
        with self._lock:
            self._record(name)
        return self._on_loader(self._unload_by_request, name)

    def acquire(self, name: str, version: int | None = None) -> Future[LoadedModel]:
        """The version that serves a request: a done future when it is loaded; else, in
        budget mode, a future that completes when the load started for it finishes.

        Never blocks. Raises ModelNotFound (no such model or version) or
        ModelNotReady (loading, failed, unloaded) when there is nothing to wait for.
        Each caller gets a future of its own, so cancelling one wait (a request
        timing out) never cancels the load the others wait for.
        """
        with self._lock:
            model = self._served(name, version)
            if model is not None:
                return done(model)
            record = self._models[name]
            target = record.target(version)
            if target is None or not self.lazy or record.pinned:
                raise self._not_served(record, target)
            if record.failed.get(target) == record.source(target):
                raise self._not_served(record, target)
            key = (name, target)
            shared = self._pending.get(key)
            if shared is None:
                shared = self._on_loader(self._load_on_request, name, target)
                self._pending[key] = shared
                if target not in self._drainer.versions(name):
                    self._states.loading(name, target)
        return follow(shared)

    # -- reading ---------------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        """The loaded version that serves a request; never loads anything."""
        with self._lock:
            model = self._served(name, version)
            if model is None:
                record = self._models[name]
                raise self._not_served(record, record.target(version))
            return model

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return [m for r in self._models.values() for m in r.served.values()]

    def index(self) -> list[VersionState]:
        """Every version's state; a version the policy serves that has none yet is listed
        UNAVAILABLE with why (not loaded yet, unloaded through the API)."""
        waiting = NOT_LOADED_YET if self.lazy else "not loaded"
        with self._lock:
            placeholders = [
                VersionState(
                    record.name,
                    version,
                    UNAVAILABLE,
                    UNLOADED_BY_REQUEST if record.pinned else waiting,
                )
                for record in self._models.values()
                for version in record.desired()
            ]
        return self._states.index(placeholders)

    def is_ready(self) -> bool:
        """Start-up is done and there is something to serve: a loaded model, or in budget
        mode a model known to the stores (it loads on its first request)."""
        if not self._scanned.is_set():
            return False
        with self._lock:
            if self.lazy:
                return bool(self._models)
            return any(r.served for r in self._models.values())

    def stats(self) -> RepositoryStats:
        with self._lock:
            loads, unloads = dict(self._swap.loads), dict(self._swap.unloads)
        held = self.loaded() + self._drainer.models()
        return RepositoryStats(
            states=self.index(),
            loads=loads,
            unloads=unloads,
            used_bytes=sum(m.resident_bytes for m in held),
            budget_bytes=self.memory_budget_bytes,
        )

    # -- what requests see (call with the lock held) ---------------------------------

    def _record(self, name: str) -> ModelRecord:
        record = self._models.get(name)
        if record is None:
            raise ModelNotFound(f"model {name!r} is not in the repository", sorted(self._models))
        return record

    def _served(self, name: str, version: int | None) -> LoadedModel | None:
        model = self._record(name).serving(version)
        if model is not None and self._budget is not None:
            self._budget.used(name, model.version)
        return model

    def _not_served(self, record: ModelRecord, version: int | None) -> BatchserveError:
        return self._states.why_not_served(record.name, version, pinned=record.pinned)

    # -- on the loader thread --------------------------------------------------------

    def _on_loader(self, fn: Callable[..., T], *args: object, **kwargs: object) -> Future[T]:
        if self._closed:
            raise ModelNotReady("the server is shutting down")
        return self._loader.submit(fn, *args, **kwargs)

    def _refresh(self, *, initial: bool) -> None:
        try:
            self._apply_scan(initial=initial)
        finally:
            self._scanned.set()

    def _apply_scan(self, *, initial: bool) -> None:
        scan, unreachable = self._scan()
        for name, (store, listing) in scan.items():
            self._note(name, store, listing, initial=initial)
        for name, record in list(self._models.items()):
            if name not in scan and not any(record.store is s for s in unreachable):
                self._remove(record)
        for name in scan:
            try:
                self._reconcile(self._models[name], settle=not initial)
            except Exception:  # one model's surprise must not stop the others loading
                log.exception("model %s: applying the repository's changes failed", name)

    def _note(
        self, name: str, store: ModelStore, listing: ModelListing, *, initial: bool
    ) -> ModelRecord:
        """The model's record, with what its store lists now."""
        with self._lock:
            record = self._models.get(name)
            if record is None:
                record = self._models[name] = ModelRecord(name, store, listing)
                if initial:  # what is there at start is not being copied in
                    record.seen = dict(listing.versions)
            record.store, record.listing = store, listing
            return record

    def _scan(self, only: ModelStore | None = None) -> tuple[Scan, list[ModelStore]]:
        with self._lock:
            known = {n: (r.store, r.listing) for n, r in self._models.items()}
        return scan_stores([only] if only is not None else self._stores, known)

    def _reconcile(self, record: ModelRecord, *, settle: bool, explicit: bool = False) -> list[str]:
        """Bring one model to what its store and policy say (`reconcile.plan`); returns
        why versions failed. `explicit`: every version the policy serves, budget or not."""
        problems = record.refresh_config(self._states, self._lock)
        lazy = self.lazy and not explicit
        for action in plan(record.view(), lazy=lazy, settle=settle):
            try:
                self._swap.apply(record, action)
            except BatchserveError as exc:
                problems.append(f"version {action.version}: {exc}")
        with self._lock:
            record.seen = dict(record.listing.versions)
        self._prune_states(record)
        return problems

    def _load_on_request(self, name: str, version: int) -> LoadedModel:
        try:
            record = self._record(name)
            if record.pinned:
                raise self._not_served(record, version)
            if version in record.served:  # loaded while this request waited
                return record.served[version]
            record.refresh_config(self._states, self._lock)
            if record.config is None or version not in record.desired():
                raise self._not_served(record, version)
            return self._swap.load(record, version)
        finally:
            with self._lock:
                self._pending.pop((name, version), None)

    def _load_by_request(self, name: str, store: ModelStore | None) -> None:
        scan, _ = self._scan(only=store)
        if name not in scan:
            raise ModelNotFound(f"model {name!r} is not in the repository", sorted(scan))
        record = self._note(name, *scan[name], initial=False)
        with self._lock:
            record.pinned = False
            record.failed.clear()  # an explicit load tries again what failed
            record.config_failed = None
        problems = self._reconcile(record, settle=False, explicit=True)
        if not record.desired() and not problems:
            problems.append("no version to serve (check the version folders and version_policy)")
        if problems:
            raise ModelNotReady(f"model {name!r} failed to load: " + "; ".join(problems))

    def _unload_by_request(self, name: str) -> None:
        record = self._record(name)
        with self._lock:
            record.pinned = True
        self._swap.retire_all(record, why="requested", reason=UNLOADED_BY_REQUEST, wait=True)
        self._prune_states(record)

    def _remove(self, record: ModelRecord) -> None:
        """The model is gone from its store: unload it and forget it."""
        log.info("model %s is no longer in %s: unloading it", record.name, record.store)
        self._swap.retire_all(
            record, why="removed", reason="removed from the repository", wait=False
        )
        with self._lock:
            self._models.pop(record.name, None)
            self._states.forget(record.name, keep=self._drainer.versions(record.name))

    def _prune_states(self, record: ModelRecord) -> None:
        """Forget versions that are gone from the store and no longer loaded."""
        with self._lock:
            keep = set(record.listing.versions) | set(record.served) | {MODEL}
            keep |= self._drainer.versions(record.name)
            self._states.forget(record.name, keep=keep)
