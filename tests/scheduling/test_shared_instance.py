from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from batchserve.scheduling import SharedInstance
from tests import onnx_builders
from tests.scheduling.instances import ObservedInstance


def test_concurrent_calls_on_one_instance_up_to_the_bound(linear):
    observed = ObservedInstance(linear, delay_s=0.01)
    shared = SharedInstance(observed, max_in_flight=3)
    shared.start()
    xs = [np.full((1, 4), i, np.float32) for i in range(60)]
    try:
        with ThreadPoolExecutor(16) as ex:
            results = list(ex.map(lambda x: shared.submit({"x": x}).result(timeout=30), xs))
    finally:
        shared.stop()
    for x, r in zip(xs, results, strict=True):
        np.testing.assert_allclose(r.outputs["y"], onnx_builders.linear_reference(x), rtol=1e-5)
    assert observed.max_active == 3, "calls overlap on the one instance, never past the bound"
    assert shared.stats().workers == 3


def test_shared_refuses_an_unsafe_instance(linear):
    with pytest.raises(ValueError, match="not safe"):
        SharedInstance(ObservedInstance(linear, safe=False))
