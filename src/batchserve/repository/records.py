"""What the manager knows of one model: its store and listing, its parsed model.yaml,
the versions it serves and the files that failed."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from batchserve.config import ModelConfig
from batchserve.errors import BatchserveError, ModelNotFound
from batchserve.repository.loaded_model import LoadedModel
from batchserve.repository.loader import read_config
from batchserve.repository.reconcile import ConfigStep, ModelView, config_step, source_of
from batchserve.repository.states import StateTable
from batchserve.repository.store import ModelListing, ModelStore, StoreUnavailable

log = logging.getLogger(__name__)


@dataclass
class ModelRecord:
    """One model of the repository. Changed on the manager's loader thread only, under
    the manager's lock where request threads read it."""

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

    def view(self) -> ModelView:
        """The record as `reconcile.plan` reads it."""
        return ModelView(
            listing=self.listing,
            previous=dict(self.seen),
            policy=self.config.version_policy if self.config is not None else None,
            config_source=self.config_source,
            served={v: m.source for v, m in self.served.items()},
            failed=dict(self.failed),
            pinned=self.pinned,
        )

    def source(self, version: int) -> str:
        return source_of(self.listing, version, self.config_source)

    def desired(self) -> list[int]:
        """The listed versions the policy serves."""
        return self.view().desired()

    def target(self, version: int | None) -> int | None:
        """The version a request for `version` (None: the latest) is for."""
        return version if version is not None else max(self.desired(), default=None)

    def serving(self, version: int | None) -> LoadedModel | None:
        """The loaded version that serves a request for `version` (None: the highest
        loaded), None when it is not loaded; ModelNotFound when there is no such version
        to serve at all (not listed, or not one the policy serves)."""
        served = self.served
        if version is None:
            return served[max(served)] if served else None
        if version in served:
            return served[version]
        if version not in self.listing.versions or (
            self.config is not None and version not in self.desired()
        ):
            available = sorted(set(served) | set(self.desired()))
            raise ModelNotFound(
                f"model {self.name!r} has no version {version} to serve",
                [str(v) for v in available],
            )
        return None

    def refresh_config(self, states: StateTable, lock: threading.RLock) -> list[str]:
        """Parse model.yaml if the one listed is new (`reconcile.config_step`); returns
        its problem, if it has one. `lock`: the one request threads read the record under."""
        signature = self.listing.config_signature
        step = config_step(signature, self.config_source, self.config_failed)
        if step is ConfigStep.CURRENT:
            with lock:
                self.config_failed = None
                states.config_ok(self.name)
            return []
        if step is ConfigStep.FAILED:
            problem = states.config_problem(self.name)
            return [problem] if problem is not None else []
        try:
            config = read_config(self.store.model_dir(self.name) / "model.yaml")
        except BatchserveError as exc:
            log.error("model %s: %s", self.name, exc)
            with lock:
                if not isinstance(exc, StoreUnavailable):  # that passes by itself: retry
                    self.config_failed = signature
                states.config_failed(self.name, str(exc))
            return [str(exc)]
        with lock:
            self.config, self.config_source, self.config_failed = config, signature, None
            states.config_ok(self.name)
        return []
