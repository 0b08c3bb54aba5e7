"""The reconcile decisions on their own: listings and records in, actions out.
No threads, no timers, no files, no server."""

from __future__ import annotations

from batchserve.config import VersionPolicy
from batchserve.repository.reconcile import (
    ConfigStep,
    Load,
    ModelView,
    Recovered,
    Retire,
    Settle,
    config_step,
    plan,
    source_of,
)
from batchserve.repository.store import ModelListing

LATEST = VersionPolicy()


def _view(
    versions: dict[int, str],
    *,
    previous: dict[int, str] | None = None,
    policy: VersionPolicy | None = LATEST,
    config: str = "c1",
    served: dict[int, str] | None = None,
    failed: dict[int, str] | None = None,
    pinned: bool = False,
) -> ModelView:
    """A model whose model.yaml `config` parsed; `previous` defaults to `versions`
    (nothing changed since the last scan)."""
    listing = ModelListing("m", config, versions)
    return ModelView(
        listing=listing,
        previous=versions if previous is None else previous,
        policy=policy,
        config_source=config,
        served=served or {},
        failed=failed or {},
        pinned=pinned,
    )


def _source(version: int, files: str, config: str = "c1") -> str:
    return source_of(ModelListing("m", config, {version: files}), version, config)


def test_the_policy_picks_what_loads_newest_first():
    versions = {1: "a", 2: "b", 3: "c"}
    assert plan(_view(versions), lazy=False, settle=False) == [Load(3)]
    two = VersionPolicy(latest=2)
    assert plan(_view(versions, policy=two), lazy=False, settle=False) == [Load(3), Load(2)]
    some = VersionPolicy(specific=[1, 3, 7])
    assert plan(_view(versions, policy=some), lazy=False, settle=False) == [Load(3), Load(1)]
    assert plan(_view(versions, policy=None), lazy=False, settle=False) == []


def test_new_files_settle_for_one_scan_before_they_load():
    served = {1: _source(1, "a")}
    first_sight = _view({1: "a", 2: "b"}, previous={1: "a"}, served=served)
    assert plan(first_sight, lazy=False, settle=True) == [Settle(2)]
    still_copying = _view({1: "a", 2: "b2"}, previous={1: "a", 2: "b"}, served=served)
    assert plan(still_copying, lazy=False, settle=True) == [Settle(2)]
    settled = _view({1: "a", 2: "b"}, previous={1: "a", 2: "b"}, served=served)
    assert plan(settled, lazy=False, settle=True) == [Load(2), Retire(1, (2,))]
    # At start and on an explicit load nothing is being copied in: no waiting.
    assert plan(first_sight, lazy=False, settle=False) == [Load(2), Retire(1, (2,))]


def test_a_served_version_reloads_when_its_files_or_model_yaml_change():
    served = {1: _source(1, "a")}
    assert plan(_view({1: "a"}, served=served), lazy=False, settle=True) == []
    new_config = _view({1: "a"}, config="c2", served=served)
    assert plan(new_config, lazy=False, settle=True) == [Load(1, reload=True)]
    # Changed files settle first; the loaded ones serve meanwhile, with nothing to report.
    changing = _view({1: "a2"}, previous={1: "a"}, served=served)
    assert plan(changing, lazy=False, settle=True) == []
    settled = _view({1: "a2"}, served=served)
    assert plan(settled, lazy=False, settle=True) == [Load(1, reload=True)]


def test_a_failure_counts_only_while_the_files_it_failed_on_are_listed():
    broken = {2: _source(2, "bad")}
    served = {1: _source(1, "a")}
    same = _view({1: "a", 2: "bad"}, served=served, failed=broken)
    assert plan(same, lazy=False, settle=True) == []  # not tried again on every scan
    fixed = _view({1: "a", 2: "good"}, served=served, failed=broken)
    assert plan(fixed, lazy=False, settle=True) == [Load(2), Retire(1, (2,))]


def test_files_put_back_as_they_were_serve_again_after_a_failed_reload():
    failed_reload = {1: _source(1, "broken")}
    restored = _view({1: "a"}, served={1: _source(1, "a")}, failed=failed_reload)
    assert plan(restored, lazy=False, settle=True) == [Recovered(1)]
    still_broken = _view({1: "broken"}, served={1: _source(1, "a")}, failed=failed_reload)
    assert plan(still_broken, lazy=False, settle=True) == []


def test_old_versions_retire_in_favour_of_the_newest_the_policy_serves():
    served = {1: _source(1, "a"), 2: _source(2, "b")}
    two = VersionPolicy(latest=2)
    actions = plan(
        _view({1: "a", 2: "b", 3: "c"}, policy=two, served=served), lazy=False, settle=True
    )
    assert actions == [Load(3), Retire(1, (3, 2))]
    # A model.yaml that has not parsed yet decides nothing: what serves keeps serving.
    unparsed = _view({1: "a", 2: "b"}, policy=None, served=served)
    assert plan(unparsed, lazy=False, settle=True) == []


def test_budget_mode_keeps_only_models_in_use_current():
    versions = {1: "a", 2: "b"}
    assert plan(_view(versions), lazy=True, settle=True) == []  # loads on its first request
    in_use = _view(versions, served={1: _source(1, "a")})
    assert plan(in_use, lazy=True, settle=True) == [Load(2), Retire(1, (2,))]


def test_a_model_unloaded_through_the_api_loads_nothing():
    assert plan(_view({1: "a"}, pinned=True), lazy=False, settle=False) == []


def test_the_config_step_follows_the_file_listed_now():
    assert config_step("s1", parsed_from=None, failed_on=None) is ConfigStep.READ
    assert config_step("s2", parsed_from="s1", failed_on=None) is ConfigStep.READ
    assert config_step("s2", parsed_from="s1", failed_on="s2") is ConfigStep.FAILED
    # The original model.yaml put back with its old time (`cp -p`) after a broken one:
    # it is the parsed one again, and the failure of the other file no longer counts.
    assert config_step("s1", parsed_from="s1", failed_on="s2") is ConfigStep.CURRENT
