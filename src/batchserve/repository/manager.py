"""The model manager: which versions are loaded, which one serves a request, and every
change to that (load, hot swap, unload, the memory budget).

Concurrency: every change runs on one loader thread, one at a time, so two loads
never race for the same memory or the same version; request threads and the
event loop only read, under a lock held for dictionary look-ups. A request that
needs a model that is not loaded gets a `Future` (`acquire`), never a blocked
thread.

Hot swap: a new version (or a reload of a changed one) is loaded and warmed up
while the old one serves; then the served dictionary is replaced under the lock,
and the old version is told its successor before its scheduler stops accepting.
It drains what it had accepted in a background thread; a caller that took the
old version before the swap and submits after is sent on to the successor by
`LoadedModel.submit`. No request fails because of a swap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from batchserve.config import ModelConfig
from batchserve.errors import BatchserveError, ModelNotFound, ModelNotReady
from batchserve.repository.budget import NoRoom, Resident, plan_eviction
from batchserve.repository.loaded_model import LoadedModel
from batchserve.repository.loader import load_model_version, predict_resident_bytes, read_config
from batchserve.repository.poller import RepositoryPoller
from batchserve.repository.store import ModelListing, ModelStore, StoreUnavailable
from batchserve.repository.version_policy import versions_to_serve
from batchserve.scheduling.workers import BatchObserver
from batchserve.units import format_size

log = logging.getLogger(__name__)

T = TypeVar("T")

READY, LOADING, UNLOADING, UNAVAILABLE = "READY", "LOADING", "UNLOADING", "UNAVAILABLE"
STATES = (READY, LOADING, UNLOADING, UNAVAILABLE)
NOT_LOADED_YET = "not loaded: loads on the first request"
UNLOADED_BY_REQUEST = "unloaded through the repository API"
SETTLING = "new files: loads once they stop changing (next scan)"


@dataclass(frozen=True)
class VersionState:
    """What the repository index reports for one version (0: the model as a whole)."""

    name: str
    version: int
    state: str  # READY | LOADING | UNLOADING | UNAVAILABLE
    reason: str = ""


@dataclass(frozen=True)
class RepositoryStats:
    """A snapshot for metrics."""

    states: list[VersionState]
    loads: dict[tuple[str, str], int]  # (model, "ok" | "failed") -> count
    unloads: dict[tuple[str, str], int]  # (model, why) -> count
    used_bytes: int
    budget_bytes: int | None


#: Called after every runtime call with (model, version, rows in the batch, seconds).
ModelBatchObserver = Callable[[str, int, int, float], None]


@dataclass
class _Model:
    """What the manager knows of one model. Changed on the loader thread only, under the
    lock where request threads read it."""

    name: str
    store: ModelStore
    listing: ModelListing
    config: ModelConfig | None = None
    config_source: str | None = None  # the config signature `config` was parsed from
    config_failed: str | None = None  # a config signature that did not parse
    served: dict[int, LoadedModel] = field(default_factory=dict)  # replaced, never mutated
    failed: dict[int, str] = field(default_factory=dict)  # version -> source that failed
    seen: dict[int, str] = field(default_factory=dict)  # signatures at the previous scan
    pinned: bool = False  # unloaded through the API: stays so until loaded through it

    def source(self, version: int) -> str:
        return f"{self.listing.versions.get(version, '')}:{self.config_source}"

    def desired(self) -> list[int]:
        if self.config is None:
            return []
        return versions_to_serve(self.config.version_policy, list(self.listing.versions))


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
        self._on_batch = on_batch
        self._profile_budget_s = profile_budget_s
        self.memory_budget_bytes = memory_budget_bytes
        self._drain_timeout_s = drain_timeout_s
        self._models: dict[str, _Model] = {}
        self._states: dict[tuple[str, int], VersionState] = {}
        self._last_used: dict[tuple[str, int], float] = {}
        self._pending: dict[tuple[str, int], Future[LoadedModel]] = {}
        self._retiring: dict[int, tuple[LoadedModel, threading.Thread]] = {}
        self._loads: Counter[tuple[str, str]] = Counter()
        self._unloads: Counter[tuple[str, str]] = Counter()
        self._lock = threading.RLock()
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._poller: RepositoryPoller | None = None
        self._scanned = threading.Event()
        self._closed = False

    @property
    def lazy(self) -> bool:
        """Models load on their first request: the mode a memory budget implies."""
        return self.memory_budget_bytes is not None

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
            retiring = list(self._retiring.values())
        self._loader.shutdown(wait=False, cancel_futures=True)
        for model in self.loaded():
            model.stop(drain=drain, timeout=timeout)
        for _, thread in retiring:
            thread.join(timeout)

    # -- asynchronous requests (for the event loop: they return at once) -------------

    def request_load(self, name: str, store: ModelStore | None = None) -> Future[None]:
        """Load (or reload) `name` as its store has it now, whatever the budget mode.
        The future fails with ModelNotFound or ModelNotReady (with every reason)."""
        return self._on_loader(self._load_by_request, name, store)

    def request_unload(self, name: str) -> Future[None]:
        """Unload every version of `name`; it stays unloaded until loaded again."""
        with self._lock:
            if name not in self._models:
                raise ModelNotFound(f"model {name!r} is not in the repository", self._names())
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
                return _done(model)
            record = self._models[name]
            target = version if version is not None else max(record.desired(), default=None)
            if target is None or not self.lazy or record.pinned:
                raise self._not_served(record, target)
            if record.failed.get(target) == record.source(target):
                raise self._not_served(record, target)
            key = (name, target)
            shared = self._pending.get(key)
            if shared is None:
                shared = self._on_loader(self._load_on_request, name, target)
                self._pending[key] = shared
                if key not in self._retiring_keys():
                    self._states[key] = VersionState(name, target, LOADING)
        return _follow(shared)

    # -- reading ---------------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        """The loaded version that serves a request; never loads anything."""
        with self._lock:
            model = self._served(name, version)
            if model is None:
                record = self._models[name]
                target = version if version is not None else max(record.desired(), default=None)
                raise self._not_served(record, target)
            return model

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return [m for r in self._models.values() for m in r.served.values()]

    def index(self) -> list[VersionState]:
        with self._lock:
            states = dict(self._states)
            for record in self._models.values():
                for version in record.desired():
                    if (record.name, version) not in states:
                        reason = "not loaded"
                        if record.pinned:
                            reason = UNLOADED_BY_REQUEST
                        elif self.lazy:
                            reason = NOT_LOADED_YET
                        states[(record.name, version)] = VersionState(
                            record.name, version, UNAVAILABLE, reason
                        )
        return sorted(states.values(), key=lambda s: (s.name, s.version))

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
            loads, unloads = dict(self._loads), dict(self._unloads)
        return RepositoryStats(
            states=self.index(),
            loads=loads,
            unloads=unloads,
            used_bytes=sum(r.bytes for r in self._resident(None)),
            budget_bytes=self.memory_budget_bytes,
        )

    # -- what requests see (call with the lock held) ---------------------------------

    def _names(self) -> list[str]:
        return sorted(self._models)

    def _served(self, name: str, version: int | None) -> LoadedModel | None:
        record = self._models.get(name)
        if record is None:
            raise ModelNotFound(f"model {name!r} is not in the repository", self._names())
        served = record.served
        if version is None:
            model = served[max(served)] if served else None
        elif version in served:
            model = served[version]
        elif version not in record.listing.versions or (
            record.config is not None and version not in record.desired()
        ):
            available = sorted(set(served) | set(record.desired()))
            raise ModelNotFound(
                f"model {name!r} has no version {version} to serve",
                [str(v) for v in available],
            )
        else:
            model = None
        if model is not None:
            self._last_used[(name, model.version)] = time.monotonic()
        return model

    def _not_served(self, record: _Model, version: int | None) -> BatchserveError:
        name = record.name
        if record.pinned:
            return ModelNotFound(
                f"model {name!r} is unloaded (through the repository API); "
                f"POST /v2/repository/models/{name}/load loads it again"
            )
        if version is None:
            problem = self._states.get((name, 0))
            why = f": {problem.reason}" if problem is not None else ""
            return ModelNotReady(f"model {name!r} has no version to serve{why}")
        state = self._states.get((name, version))
        if state is None or (state.state == UNAVAILABLE and not state.reason):
            return ModelNotReady(f"model {name!r} version {version} is not loaded")
        if state.state == UNAVAILABLE:
            return ModelNotReady(f"model {name!r} version {version} is unavailable: {state.reason}")
        return ModelNotReady(f"model {name!r} version {version} is {state.state.lower()}")

    def _retiring_keys(self) -> set[tuple[str, int]]:
        return {(m.name, m.version) for m, _ in self._retiring.values()}

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
        scan, failed_stores = self._scan()
        for name, (store, listing) in scan.items():
            record = self._models.get(name)
            with self._lock:
                if record is None:
                    record = self._models[name] = _Model(name, store, listing)
                    if initial:
                        record.seen = dict(listing.versions)
                else:
                    record.store, record.listing = store, listing
        for name in list(self._models):
            record = self._models[name]
            if name not in scan and not any(record.store is s for s in failed_stores):
                self._remove(record)
        for name in scan:
            try:
                self._reconcile(self._models[name], settle=not initial, explicit=False)
            except Exception:  # one model's surprise must not stop the others loading
                log.exception("model %s: applying the repository's changes failed", name)

    def _scan(
        self, only: ModelStore | None = None
    ) -> tuple[dict[str, tuple[ModelStore, ModelListing]], list[ModelStore]]:
        """Every store's listing; the first store that has a model wins. A store that
        cannot be listed keeps its models as they were."""
        found: dict[str, tuple[ModelStore, ModelListing]] = {}
        failed: list[ModelStore] = []
        for store in [only] if only is not None else self._stores:
            try:
                listings = store.snapshot()
            except Exception as exc:
                log.error("listing %s failed: %s", store, exc)
                failed.append(store)
                listings = {n: r.listing for n, r in self._models.items() if r.store is store}
            for name, listing in listings.items():
                if name in found:
                    if self._models.get(name) is None:
                        log.warning("model %s in %s is shadowed by an earlier store", name, store)
                    continue
                found[name] = (store, listing)
        return found, failed

    def _reconcile(self, record: _Model, *, settle: bool, explicit: bool) -> list[str]:
        """Bring one model to what its store and policy say; returns why versions failed.

        `settle`: load a version only once its files were the same at the previous
        scan too, so that a version still being copied in is not loaded half-written.
        """
        problems = self._read_config(record)
        desired = record.desired()
        if explicit or (not record.pinned and not self.lazy):
            targets = desired
        elif not record.pinned and record.served and desired:
            # Budget mode loads on request, but a model in use is kept current.
            targets = sorted({max(desired)} | (set(record.served) & set(desired)))
        else:
            targets = []
        for version in sorted(targets, reverse=True):  # the newest serves first
            current = record.served.get(version)
            source = record.source(version)
            if current is not None and current.source == source:
                continue
            if not explicit and record.failed.get(version) == source:
                continue  # failed on these very files; a change to them retries
            if settle and record.seen.get(version) != record.listing.versions[version]:
                if current is None:
                    with self._lock:
                        self._states[(record.name, version)] = VersionState(
                            record.name, version, LOADING, SETTLING
                        )
                continue
            try:
                self._load_version(record, version)
            except BatchserveError as exc:
                problems.append(f"version {version}: {exc}")
        with self._lock:
            record.seen = dict(record.listing.versions)
        # Old versions go only once a version the policy wants serves in their place.
        if set(record.served) & set(desired):
            newest = max(set(record.served) & set(desired))
            for version in sorted(set(record.served) - set(desired)):
                self._retire(
                    record,
                    version,
                    why="replaced",
                    reason=f"unloaded: version {newest} serves in its place",
                    successor=record.served[newest],
                )
        self._prune_states(record)
        return problems

    def _read_config(self, record: _Model) -> list[str]:
        signature = record.listing.config_signature
        if signature in (record.config_source, record.config_failed):
            problem = self._states.get((record.name, 0))
            return [problem.reason] if problem is not None else []
        try:
            config = read_config(record.store.model_dir(record.name) / "model.yaml")
        except BatchserveError as exc:
            log.error("model %s: %s", record.name, exc)
            with self._lock:
                if not isinstance(exc, StoreUnavailable):
                    record.config_failed = signature
                self._states[(record.name, 0)] = VersionState(record.name, 0, UNAVAILABLE, str(exc))
            return [str(exc)]
        with self._lock:
            record.config, record.config_source, record.config_failed = config, signature, None
            self._states.pop((record.name, 0), None)
        return []

    def _load_version(self, record: _Model, version: int) -> LoadedModel:
        """Load one version and swap it in; raises ModelNotReady with the reason."""
        name, key, source = record.name, (record.name, version), record.source(version)
        config = record.config
        assert config is not None
        reloading = version in record.served
        if not reloading:
            with self._lock:
                self._states[key] = VersionState(name, version, LOADING)
        log.info("model %s v%d: %s", name, version, "reloading" if reloading else "loading")
        started = time.perf_counter()
        try:
            version_dir = record.store.fetch(name, version)
            model_dir = record.store.model_dir(name)
            if self.memory_budget_bytes is not None:
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
            self._states[key] = VersionState(name, version, READY)
            self._last_used[key] = time.monotonic()
            self._loads[(name, "ok")] += 1
        log.info(
            "model %s v%d ready in %.2f s (about %s)",
            name,
            version,
            model.load_seconds,
            format_size(model.resident_bytes),
        )
        if old is not None:
            self._stop_in_background(old, successor=model, why="replaced", reason="")
        if self.memory_budget_bytes is not None:
            try:  # the real layout may hold more than predicted
                self._make_room(0, keep=name, count_draining=False)
            except NoRoom as exc:
                log.warning("memory budget exceeded after loading %s v%d: %s", name, version, exc)
        return model

    def _load_failed(self, record: _Model, version: int, exc: Exception) -> None:
        name = record.name
        if isinstance(exc, BatchserveError | NoRoom):
            log.error("model %s v%d not loaded: %s", name, version, exc)
        else:
            log.exception("model %s v%d not loaded", name, version)
        transient = isinstance(exc, StoreUnavailable) or (
            isinstance(exc, NoRoom) and not exc.permanent
        )
        with self._lock:
            if not transient:
                record.failed[version] = record.source(version)
            self._loads[(name, "failed")] += 1
            if version in record.served:  # a reload failed: the loaded one keeps serving
                self._states[(name, version)] = VersionState(
                    name, version, READY, f"a reload failed, the loaded files serve: {exc}"
                )
            else:
                self._states[(name, version)] = VersionState(name, version, UNAVAILABLE, str(exc))

    def _load_on_request(self, name: str, version: int) -> LoadedModel:
        try:
            record = self._models.get(name)
            if record is None:
                raise ModelNotFound(f"model {name!r} is not in the repository", self._names())
            if record.pinned:
                raise self._not_served(record, version)
            if version in record.served:  # loaded while this request waited
                return record.served[version]
            self._read_config(record)
            if record.config is None or version not in record.desired():
                raise self._not_served(record, version)
            return self._load_version(record, version)
        finally:
            with self._lock:
                self._pending.pop((name, version), None)

    def _load_by_request(self, name: str, store: ModelStore | None) -> None:
        scan, _ = self._scan(only=store)
        if name not in scan:
            raise ModelNotFound(f"model {name!r} is not in the repository", sorted(scan))
        found_in, listing = scan[name]
        with self._lock:
            record = self._models.get(name)
            if record is None:
                record = self._models[name] = _Model(name, found_in, listing)
            record.store, record.listing, record.pinned = found_in, listing, False
            record.failed.clear()
            record.config_failed = None
        problems = self._reconcile(record, settle=False, explicit=True)
        if not record.desired() and not problems:
            problems.append("no version to serve (check the version folders and version_policy)")
        if problems:
            raise ModelNotReady(f"model {name!r} failed to load: " + "; ".join(problems))

    def _unload_by_request(self, name: str) -> None:
        record = self._models.get(name)
        if record is None:
            raise ModelNotFound(f"model {name!r} is not in the repository", self._names())
        with self._lock:
            record.pinned = True
        for version in sorted(record.served):
            self._retire(record, version, why="requested", reason=UNLOADED_BY_REQUEST, wait=True)
        self._prune_states(record)

    def _remove(self, record: _Model) -> None:
        """The model is gone from its store: unload it and forget it."""
        log.info("model %s is no longer in %s: unloading it", record.name, record.store)
        for version in sorted(record.served):
            self._retire(record, version, why="removed", reason="removed from the repository")
        with self._lock:
            self._models.pop(record.name, None)
            for key in [k for k in self._states if k[0] == record.name]:
                if key not in self._retiring_keys():
                    del self._states[key]

    # -- unloading -------------------------------------------------------------------

    def _retire(
        self,
        record: _Model,
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
        thread = self._stop_in_background(model, successor=successor, why=why, reason=reason)
        if wait:
            thread.join()

    def _stop_in_background(
        self, model: LoadedModel, *, successor: LoadedModel | None, why: str, reason: str
    ) -> threading.Thread:
        key = (model.name, model.version)
        # Set before the scheduler stops accepting: a late submit follows it.
        model.successor = successor
        with self._lock:
            if successor is None or successor.version != model.version:
                self._states[key] = VersionState(model.name, model.version, UNLOADING, reason)
            self._unloads[(model.name, why)] += 1
            thread = threading.Thread(
                target=self._drain,
                args=(model, reason),
                name=f"unload-{model.name}-v{model.version}",
                daemon=True,
            )
            self._retiring[id(model)] = (model, thread)
        thread.start()
        return thread

    def _drain(self, model: LoadedModel, reason: str) -> None:
        started = time.perf_counter()
        try:
            model.stop(drain=True, timeout=self._drain_timeout_s)
        except Exception:
            log.exception("stopping %s v%d failed", model.name, model.version)
        key = (model.name, model.version)
        with self._lock:
            self._retiring.pop(id(model), None)
            record = self._models.get(model.name)
            state = self._states.get(key)
            if state is not None and state.state == UNLOADING:
                if record is None:
                    del self._states[key]
                else:
                    self._states[key] = replace(state, state=UNAVAILABLE)
        log.info(
            "model %s v%d unloaded after draining for %.2f s%s",
            model.name,
            model.version,
            time.perf_counter() - started,
            f" ({reason})" if reason else "",
        )

    def _make_room(self, need: int, *, keep: str, count_draining: bool = True) -> None:
        """Unload the least recently used versions (never `keep`'s) until `need` fits.

        Versions still draining after a swap hold memory until they finish;
        `count_draining=False` leaves them out, for the check after a swap, where
        unloading a third model for memory that is about to be freed would be wrong.
        """
        limit = self.memory_budget_bytes
        assert limit is not None
        try:
            victims = plan_eviction(limit, need, self._resident(keep, count_draining))
        except NoRoom:
            # Versions still draining hold memory that is about to be freed: wait once.
            with self._lock:
                draining = [t for _, t in self._retiring.values()]
            if not draining:
                raise
            for thread in draining:
                thread.join(self._drain_timeout_s)
            victims = plan_eviction(limit, need, self._resident(keep, count_draining))
        for name, version in victims:  # type: ignore[misc]
            record = self._models[name]
            log.info(
                "unloading %s v%d (least recently used) to make room for %s", name, version, keep
            )
            self._retire(
                record,
                version,
                why="evicted",
                reason=f"unloaded to make room for {keep!r} (memory budget); "
                "loads again on request",
                wait=True,
            )

    def _resident(self, keep: str | None, count_draining: bool = True) -> list[Resident]:
        with self._lock:
            resident = [
                Resident(
                    (name, version),
                    model.resident_bytes,
                    self._last_used.get((name, version), 0.0),
                    evictable=name != keep,
                )
                for name, record in self._models.items()
                for version, model in record.served.items()
            ]
            if count_draining:
                resident += [
                    Resident(id(model), model.resident_bytes, 0.0, evictable=False)
                    for model, _ in self._retiring.values()
                ]
        return resident

    def _prune_states(self, record: _Model) -> None:
        """Forget versions that are gone from the store and no longer loaded."""
        with self._lock:
            keep = set(record.listing.versions) | set(record.served) | {0}
            keep |= {v for n, v in self._retiring_keys() if n == record.name}
            for key in [k for k in self._states if k[0] == record.name and k[1] not in keep]:
                del self._states[key]

    def _observer(self, name: str, version: int) -> BatchObserver | None:
        observe = self._on_batch
        if observe is None:
            return None
        return lambda rows, seconds: observe(name, version, rows, seconds)


def _done(value: T) -> Future[T]:
    future: Future[T] = Future()
    future.set_result(value)
    return future


def _follow(shared: Future[T]) -> Future[T]:
    """A future of the caller's own that completes as `shared` does."""
    mine: Future[T] = Future()

    def copy(done: Future[T]) -> None:
        if not mine.set_running_or_notify_cancel():
            return  # this caller stopped waiting
        try:
            mine.set_result(done.result())
        except CancelledError:
            mine.set_exception(ModelNotReady("the load was cancelled: the server is stopping"))
        except BaseException as exc:
            mine.set_exception(exc)

    shared.add_done_callback(copy)
    return mine
