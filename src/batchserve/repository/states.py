"""The state of every version the repository reports, and the one place that changes it.

The repository index (`POST /v2/repository/index`, `/v1/models`, the
`batchserve_model_state` metric) and the errors of a request for a model that is
not served both read this table. Version 0 stands for the model as a whole: a
model.yaml that does not parse is reported there.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from batchserve.errors import BatchserveError, ModelNotFound, ModelNotReady

READY, LOADING, UNLOADING, UNAVAILABLE = "READY", "LOADING", "UNLOADING", "UNAVAILABLE"
STATES = (READY, LOADING, UNLOADING, UNAVAILABLE)
NOT_LOADED_YET = "not loaded: loads on the first request"
UNLOADED_BY_REQUEST = "unloaded through the repository API"
SETTLING = "new files: loads once they stop changing (next scan)"
#: The version number under which a model's own problem (its model.yaml) is reported.
MODEL = 0


@dataclass(frozen=True)
class VersionState:
    """What the repository index reports for one version (0: the model as a whole)."""

    name: str
    version: int
    state: str  # READY | LOADING | UNLOADING | UNAVAILABLE
    reason: str = ""


@dataclass(frozen=True)
class RepositoryStats:
    """A snapshot of the repository for metrics."""

    states: list[VersionState]
    loads: dict[tuple[str, str], int]  # (model, "ok" | "failed") -> count
    unloads: dict[tuple[str, str], int]  # (model, why) -> count
    used_bytes: int
    budget_bytes: int | None


class StateTable:
    """Every version's state and reason; each method is one transition.

    The only writer of version states. Safe to call from any thread: its own
    lock is held for dictionary operations only, never while calling out, so it
    can be called with the manager's lock held.
    """

    def __init__(self) -> None:
        self._states: dict[tuple[str, int], VersionState] = {}
        self._lock = threading.Lock()

    # -- transitions -----------------------------------------------------------------

    def loading(self, name: str, version: int) -> None:
        self._set(VersionState(name, version, LOADING))

    def settling(self, name: str, version: int) -> None:
        """New files that may still be being written: they load at the next scan."""
        self._set(VersionState(name, version, LOADING, SETTLING))

    def ready(self, name: str, version: int) -> None:
        """Serving, with nothing to report (an earlier failure, if any, is over)."""
        self._set(VersionState(name, version, READY))

    def load_failed(self, name: str, version: int, error: str) -> None:
        self._set(VersionState(name, version, UNAVAILABLE, error))

    def reload_failed(self, name: str, version: int, error: str) -> None:
        """Changed files did not load: the version keeps serving the files it had."""
        self._set(
            VersionState(name, version, READY, f"a reload failed, the loaded files serve: {error}")
        )

    def unloading(self, name: str, version: int, reason: str) -> None:
        """Out of service, finishing the requests it had accepted."""
        self._set(VersionState(name, version, UNLOADING, reason))

    def drained(self, name: str, version: int, *, forget: bool) -> None:
        """An UNLOADING version finished: UNAVAILABLE with the same reason, or gone from
        the table (`forget`, its model is no longer in the repository)."""
        key = (name, version)
        with self._lock:
            state = self._states.get(key)
            if state is None or state.state != UNLOADING:
                return  # reloaded in place, or forgotten meanwhile
            if forget:
                del self._states[key]
            else:
                self._states[key] = replace(state, state=UNAVAILABLE)

    def config_failed(self, name: str, error: str) -> None:
        self._set(VersionState(name, MODEL, UNAVAILABLE, error))

    def config_ok(self, name: str) -> None:
        """The model.yaml on disk is one that parsed: no model-wide problem."""
        with self._lock:
            self._states.pop((name, MODEL), None)

    def forget(self, name: str, *, keep: Collection[int] = ()) -> None:
        """Drop the model's versions other than `keep` (gone from the store, not loaded)."""
        with self._lock:
            for key in [k for k in self._states if k[0] == name and k[1] not in keep]:
                del self._states[key]

    # -- reading ---------------------------------------------------------------------

    def get(self, name: str, version: int) -> VersionState | None:
        with self._lock:
            return self._states.get((name, version))

    def config_problem(self, name: str) -> str | None:
        state = self.get(name, MODEL)
        return state.reason if state is not None else None

    def index(self, placeholders: Iterable[VersionState] = ()) -> list[VersionState]:
        """Every state, sorted; a placeholder shows only for a version with none."""
        with self._lock:
            states = dict(self._states)
        for state in placeholders:
            states.setdefault((state.name, state.version), state)
        return sorted(states.values(), key=lambda s: (s.name, s.version))

    def why_not_served(self, name: str, version: int | None, *, pinned: bool) -> BatchserveError:
        """The error for a request that found no loaded version to serve it."""
        if pinned:
            return ModelNotFound(
                f"model {name!r} is unloaded (through the repository API); "
                f"POST /v2/repository/models/{name}/load loads it again"
            )
        if version is None:
            problem = self.config_problem(name)
            why = f": {problem}" if problem is not None else ""
            return ModelNotReady(f"model {name!r} has no version to serve{why}")
        state = self.get(name, version)
        if state is None or (state.state == UNAVAILABLE and not state.reason):
            return ModelNotReady(f"model {name!r} version {version} is not loaded")
        if state.state == UNAVAILABLE:
            return ModelNotReady(f"model {name!r} version {version} is unavailable: {state.reason}")
        return ModelNotReady(f"model {name!r} version {version} is {state.state.lower()}")

    def _set(self, state: VersionState) -> None:
        with self._lock:
            self._states[(state.name, state.version)] = state
