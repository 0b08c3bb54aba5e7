"""The model manager: which models and versions are loaded, and which one serves a request."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batchserve.config import load_model_config
from batchserve.errors import BatchserveError, ModelNotFound
from batchserve.repository.loaded_model import LoadedModel
from batchserve.repository.loader import load_model_version
from batchserve.repository.local_store import LocalStore
from batchserve.repository.version_policy import versions_to_serve
from batchserve.scheduling.workers import BatchObserver

log = logging.getLogger(__name__)


@dataclass
class VersionState:
    """What the repository index reports for one version."""

    name: str
    version: int
    state: str  # "READY" | "UNAVAILABLE" | "LOADING"
    reason: str = ""


#: Called after every runtime call with (model, version, rows in the batch, seconds).
ModelBatchObserver = Callable[[str, int, int, float], None]


class ModelManager:
    """Loads the models of one or more stores and answers `get(name, version)`.

    A model that fails to load is reported in `index()` with the reason; the
    others keep loading.
    """

    def __init__(
        self,
        stores: Sequence[LocalStore],
        *,
        on_batch: ModelBatchObserver | None = None,
        profile_budget_s: float = 6.0,
    ) -> None:
        self._stores = list(stores)
        self._on_batch = on_batch
        self._profile_budget_s = profile_budget_s
        self._loaded: dict[str, dict[int, LoadedModel]] = {}
        self._states: dict[tuple[str, int], VersionState] = {}
        self._lock = threading.Lock()

    def load_all(self) -> None:
        for store in self._stores:
            for name in store.list_models():
                if name in self._loaded:
                    log.warning("model %s in %s is shadowed by an earlier store", name, store)
                    continue
                self.load(name, store)

    def load(self, name: str, store: LocalStore) -> None:
        model_dir = store.model_dir(name)
        try:
            config = load_model_config(model_dir / "model.yaml")
            versions = versions_to_serve(config.version_policy, store.list_versions(name))
        except BatchserveError as exc:
            log.error("model %s not loaded: %s", name, exc)
            self._states[(name, 0)] = VersionState(name, 0, "UNAVAILABLE", str(exc))
            return
        for version in versions:
            self._states[(name, version)] = VersionState(name, version, "LOADING")
            try:
                model = load_model_version(
                    name,
                    model_dir,
                    version,
                    config,
                    version_dir=store.fetch(name, version),
                    on_batch=self._observer(name, version),
                    profile_budget_s=self._profile_budget_s,
                )
            except BatchserveError as exc:
                log.error("model %s v%d not loaded: %s", name, version, exc)
                self._states[(name, version)] = VersionState(name, version, "UNAVAILABLE", str(exc))
                continue
            with self._lock:
                self._loaded.setdefault(name, {})[version] = model
            self._states[(name, version)] = VersionState(name, version, "READY")
            log.info("model %s v%d ready", name, version)

    def _observer(self, name: str, version: int) -> BatchObserver | None:
        observe = self._on_batch
        if observe is None:
            return None
        return lambda rows, seconds: observe(name, version, rows, seconds)

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        with self._lock:
            versions = self._loaded.get(name)
            if not versions:
                raise ModelNotFound(f"model {name!r} is not loaded", sorted(self._loaded))
            if version is None:
                return versions[max(versions)]
            if version not in versions:
                raise ModelNotFound(
                    f"model {name!r} has no loaded version {version}",
                    [str(v) for v in sorted(versions)],
                )
            return versions[version]

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return [m for versions in self._loaded.values() for m in versions.values()]

    def index(self) -> list[VersionState]:
        return sorted(self._states.values(), key=lambda s: (s.name, s.version))

    def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        for model in self.loaded():
            model.stop(drain=drain, timeout=timeout)
