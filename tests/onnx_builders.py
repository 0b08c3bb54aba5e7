"""Tiny real ONNX models the tests build, with onnx.helper, into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def linear_model(path: Path, in_features: int = 4, out_features: int = 3, seed: int = 0) -> Path:
    """y = x @ W + b with a dynamic batch dimension; input 'x' [-1, in], output 'y' [-1, out]."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((in_features, out_features)).astype(np.float32)
    b = rng.standard_normal(out_features).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", out_features])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def linear_reference(x: np.ndarray, in_features: int = 4, out_features: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((in_features, out_features)).astype(np.float32)
    b = rng.standard_normal(out_features).astype(np.float32)
    return x @ w + b


def sequence_sum_model(path: Path) -> Path:
    """Sums a variable-length sequence: 'x' [-1, -1, 2] -> 'y' [-1, 2]; mixed shapes test."""
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)],
        "seqsum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [axes],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def lookup_model(path: Path, table_size: int = 10) -> Path:
    """Gathers rows of a table by index: an out-of-range index fails the whole call.

    'idx' int64 [-1, 1] -> 'y' float32 [-1, 1, 2]; lets tests put one bad input in a batch.
    """
    table = np.arange(table_size * 2, dtype=np.float32).reshape(table_size, 2)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["y"], axis=0)],
        "lookup",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 2])],
        [numpy_helper.from_array(table, "table")],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def slow_model(path: Path, size: int = 768, repeats: int = 6, rows: int = 512) -> Path:
    """A deliberately slow model for queueing tests: 'x' [-1, size] -> 'y' [-1, size].

    Each row is tiled `rows` times and pushed through `repeats` size x size MatMuls
    (about 3.6 GFLOP a row with the defaults: tens of ms on one core), then averaged back.
    """
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    consts = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([1, rows, 1], dtype=np.int64), "tiles"),
    ]
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axis1"], ["x3"]),
        helper.make_node("Tile", ["x3", "tiles"], ["h"]),
    ]
    previous = "h"
    for i in range(repeats):
        nodes.append(helper.make_node("MatMul", [previous, "W"], [f"m{i}"]))
        previous = f"m{i}"
    nodes.append(helper.make_node("ReduceMean", [previous], ["y"], axes=[1], keepdims=0))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", size])],
        consts,
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def slow_image_model(path: Path, side: int = 16, repeats: int = 6, rows: int = 512) -> Path:
    """An image classifier as slow as `slow_model`: 'image' [-1, 3, side, side] is flattened
    to 3 * side * side features and pushed through the same MatMuls; 'logits' [-1, 3*side²]."""
    size = 3 * side * side
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    consts = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([1, rows, 1], dtype=np.int64), "tiles"),
    ]
    nodes = [
        helper.make_node("Flatten", ["image"], ["x"], axis=1),
        helper.make_node("Unsqueeze", ["x", "axis1"], ["x3"]),
        helper.make_node("Tile", ["x3", "tiles"], ["h"]),
    ]
    previous = "h"
    for i in range(repeats):
        nodes.append(helper.make_node("MatMul", [previous, "W"], [f"m{i}"]))
        previous = f"m{i}"
    nodes.append(helper.make_node("ReduceMean", [previous], ["logits"], axes=[1], keepdims=0))
    graph = helper.make_graph(
        nodes,
        "slow_image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", size])],
        consts,
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)
