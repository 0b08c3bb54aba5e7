"""Hypothesis profiles for the fuzz targets (marked `fuzz`).

`ci`, the default: derandomized (a fixed seed from each test's source), a few
hundred examples, no example database, so `make test` is deterministic and each
target runs for seconds. `fuzz` (`make fuzz`): random, FUZZ_EXAMPLES examples per
target, failures kept in .hypothesis/ so a rerun starts from them.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "fuzz",
    deadline=None,
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")),
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
