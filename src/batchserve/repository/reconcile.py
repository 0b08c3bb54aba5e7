"""What to do with one model after a scan of its store: a decision, nothing done.

`plan` reads what the store lists now and listed at the previous scan, the
version policy, which files each served version was loaded from and which
files failed, and returns the loads and retirements that bring the model to
what its store and policy say. The manager carries them out on its loader
thread; nothing here touches a thread, a timer, a file or a model.

A version's *source* is the signature of its files and of the model.yaml it is
loaded with. A served version whose source changed is reloaded. A failure is
remembered with the source it failed on and counts only while that source is
the one listed: the same broken files are not tried again on every scan, any
change to them is, and files put back as they were (`cp -p`, a restored
backup) are what serves again, whatever failed in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from batchserve.config import VersionPolicy
from batchserve.repository.store import ModelListing
from batchserve.repository.version_policy import versions_to_serve


@dataclass(frozen=True)
class ModelView:
    """One model as `plan` sees it: its listings and what the manager holds of it."""

    listing: ModelListing
    #: The versions' signatures at the previous scan (empty for a model first seen now).
    previous: Mapping[int, str]
    #: The parsed model.yaml's version policy; None while no model.yaml has parsed.
    policy: VersionPolicy | None
    #: The config signature the parsed model.yaml was read from.
    config_source: str | None
    #: version -> the source of the files it serves.
    served: Mapping[int, str] = field(default_factory=dict)
    #: version -> the source it failed to load from.
    failed: Mapping[int, str] = field(default_factory=dict)
    #: Unloaded through the repository API: nothing loads until it is loaded through it.
    pinned: bool = False

    def source(self, version: int) -> str:
        return source_of(self.listing, version, self.config_source)

    def desired(self) -> list[int]:
        """The versions the policy serves, of those listed."""
        if self.policy is None:
            return []
        return versions_to_serve(self.policy, list(self.listing.versions))


@dataclass(frozen=True)
class Load:
    """Load `version` (a reload when it serves already) and swap it in."""

    version: int
    reload: bool = False


@dataclass(frozen=True)
class Settle:
    """`version`'s files changed since the previous scan and may still be being written:
    it loads at the next scan if they are the same then."""

    version: int


@dataclass(frozen=True)
class Recovered:
    """`version` serves the files listed now; the failure remembered for it was on other
    files (since put back): forget it."""

    version: int


@dataclass(frozen=True)
class Retire:
    """Stop serving `version` in favour of the first of `successors` (newest first) that
    serves once the loads before it are done (they are served already or loaded in this
    plan); when none does, because their loads failed, it keeps serving."""

    version: int
    successors: tuple[int, ...]


Action = Load | Settle | Recovered | Retire


def plan(model: ModelView, *, lazy: bool, settle: bool) -> list[Action]:
    """The actions for one model, loads newest first (the newest serves first) and
    retirements last: an old version goes only once one the policy wants serves.

    `lazy`: budget mode, where models load on request; a model in use is still kept
    current (its newest version and the ones it serves). `settle`: load a version only
    once its files were the same at the previous scan, so that a version still being
    copied in is not loaded half-written.
    """
    desired = model.desired()
    if model.pinned:
        targets: set[int] = set()
    elif not lazy:
        targets = set(desired)
    elif model.served and desired:
        targets = {max(desired)} | (set(model.served) & set(desired))
    else:
        targets = set()
    actions: list[Action] = []
    for version in sorted(targets, reverse=True):
        source = model.source(version)
        serving = model.served.get(version)
        if serving == source:
            if version in model.failed:  # on other files, since put back as they were
                actions.append(Recovered(version))
            continue
        if model.failed.get(version) == source:
            continue  # failed on these very files; a change to them retries
        if settle and model.previous.get(version) != model.listing.versions[version]:
            if serving is None:  # a served version keeps serving while its files settle
                actions.append(Settle(version))
            continue
        actions.append(Load(version, reload=serving is not None))
    loading = {a.version for a in actions if isinstance(a, Load)}
    successors = tuple(
        v for v in sorted(desired, reverse=True) if v in model.served or v in loading
    )
    if successors:
        actions += [Retire(v, successors) for v in sorted(set(model.served) - set(desired))]
    return actions


class ConfigStep(Enum):
    """What a scan does with a model's model.yaml (`config_step`)."""

    CURRENT = "current"  # it is the one the parsed config came from: no problem to report
    FAILED = "failed"  # it is the one that failed to parse: its error stands
    READ = "read"  # it changed: read and parse it


def config_step(signature: str, parsed_from: str | None, failed_on: str | None) -> ConfigStep:
    """Decided by which model.yaml is listed now, not by what happened last: a file that
    failed and was then put back as it was is the parsed one again."""
    if signature == parsed_from:
        return ConfigStep.CURRENT
    if signature == failed_on:
        return ConfigStep.FAILED
    return ConfigStep.READ


def source_of(listing: ModelListing, version: int, config_source: str | None) -> str:
    """The signature of what a version loads from: its files and the model.yaml parsed."""
    return f"{listing.versions.get(version, '')}:{config_source}"
