"""Variable-length batching: the dynamic batcher groups requests by bucketed length and
pads them to the longest in the batch, instead of running each shape on its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from batchserve.config import ModelConfig
from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.runtimes.base import ModelInstance
from batchserve.scheduling import DynamicBatcher
from batchserve.scheduling.batching import Padding, TensorBatching, batch_key
from batchserve.scheduling.factory import padding_for
from tests import onnx_builders
from tests.scheduling.instances import ObservedInstance


def doubling_model(path: Path) -> Path:
    """'x' [-1, -1] -> 'y' = 2x [-1, -1]: an output that keeps the padded axis."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq"])],
    )
    return onnx_builders.save(helper.make_model(graph, opset_imports=onnx_builders.OPSET), path)


def held_batcher(
    instance: ModelInstance, padding: Padding
) -> tuple[DynamicBatcher, ObservedInstance]:
    """A batcher whose one worker is held on a first request, so the rest queue up."""
    observed = ObservedInstance(instance)
    batcher = DynamicBatcher([observed], max_batch_size=16, batching=TensorBatching(padding))
    batcher.start()
    return batcher, observed


def run_held(batcher: DynamicBatcher, observed: ObservedInstance, requests: list[dict]) -> list:
    observed.gate.clear()
    observed.entered.clear()
    first = batcher.submit(requests[0])
    assert observed.entered.wait(5)
    rest = [batcher.submit(r) for r in requests[1:]]
    observed.gate.set()
    return [f.result(timeout=10) for f in [first, *rest]]


def test_lengths_in_one_bucket_share_a_padded_batch_and_equal_unbatched(seqsum) -> None:
    padding = Padding(axes={"x": (1,)}, bucket=16)
    batcher, observed = held_batcher(seqsum, padding)
    rng = np.random.default_rng(0)
    lengths = [2, 3, 5, 9, 16, 13, 1, 4]  # all in the first bucket (1..16)
    requests = [{"x": rng.standard_normal((1, n, 2)).astype(np.float32)} for n in lengths]
    try:
        results = run_held(batcher, observed, requests)
    finally:
        batcher.stop()
    # The held first request ran alone; the other seven ran as one batch padded to 16.
    assert observed.calls == [1, 7]
    assert observed.seen[1].shape == (7, 16, 2)
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_allclose(
            result.outputs["y"], seqsum.run(request)["y"], rtol=1e-5, atol=1e-6
        )
        assert result.batch_size in (1, 7)


def test_lengths_in_different_buckets_are_not_padded_together(seqsum) -> None:
    batcher, observed = held_batcher(seqsum, Padding(axes={"x": (1,)}, bucket=8))
    requests = [{"x": np.ones((1, n, 2), np.float32)} for n in (3, 4, 20, 7, 18)]
    try:
        results = run_held(batcher, observed, requests)
    finally:
        batcher.stop()
    # Buckets: 3, 4, 7 -> 8; 18, 20 -> 24. The batch is padded to its longest, not the bucket.
    assert sorted(s.shape[1] for s in observed.seen[1:]) == [7, 20]
    assert [r.outputs["y"][0, 0] for r in results] == [3, 4, 20, 7, 18]


def test_outputs_that_keep_the_padded_axis_are_cut_back_per_request(tmp_path: Path) -> None:
    instance = load_instance(
        "onnx", doubling_model(tmp_path / "double.onnx"), RuntimeOptions(intra_op_threads=1)
    )
    padding = Padding(axes={"x": (1,)}, bucket=16, value=-1.0, unpad_outputs=("y",))
    batcher, observed = held_batcher(instance, padding)
    requests = [{"x": np.arange(n, dtype=np.float32)[None]} for n in (4, 2, 6, 5)]
    try:
        results = run_held(batcher, observed, requests)
    finally:
        batcher.stop()
    assert observed.seen[1].shape == (3, 6)
    assert observed.seen[1][0, 2:].tolist() == [-1.0] * 4  # the pad value
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result.outputs["y"], 2 * request["x"])


def test_the_bucketed_key_keeps_fixed_dimensions_exact() -> None:
    padding = Padding(axes={"x": (1,)}, bucket=16)
    short, long = np.zeros((1, 3, 2)), np.zeros((1, 15, 2))
    assert padding.key({"x": short}) == padding.key({"x": long})
    assert padding.key({"x": short}) != padding.key({"x": np.zeros((1, 3, 3))})
    assert padding.key({"x": short}) != padding.key({"x": np.zeros((1, 17, 2))})
    assert batch_key({"x": short}) != batch_key({"x": long})  # without padding: exact shapes


def test_padding_comes_from_model_yaml_on_the_dynamic_axes_only(seqsum) -> None:
    config = ModelConfig.model_validate({"scheduler": {"pad": {"bucket": 8, "values": {"x": 2}}}})
    padding = padding_for(config.scheduler.pad, seqsum.inputs)
    assert padding is not None
    assert dict(padding.axes) == {"x": (1,)}  # [-1, -1, 2]: the sequence axis, not the 2
    assert padding.bucket == 8 and padding.values == {"x": 2}
    assert ModelConfig.model_validate({"scheduler": {"pad": True}}).scheduler.pad is not None
    assert ModelConfig.model_validate({"scheduler": {"pad": False}}).scheduler.pad is None


@pytest.mark.parametrize("fill", [0, 7])
def test_integer_inputs_pad_with_their_own_dtype(fill: int) -> None:
    padding = Padding(axes={"ids": (1,)}, values={"ids": fill})
    stacked = padding.stack(
        [{"ids": np.array([[1, 2]], np.int64)}, {"ids": np.array([[3, 4, 5]], np.int64)}]
    )
    assert stacked["ids"].dtype == np.int64
    assert stacked["ids"].tolist() == [[1, 2, fill], [3, 4, 5]]
