"""Build the benchmark model: MobileNet v1 1.0 at 224x224, 1000 classes, random weights, as ONNX.

Usage (``make bench-model``)::

    python tools/build_benchmark_model.py --out models-bench

Writes ``OUT/mobilenet_v1/1/model.onnx``, ``model.yaml`` and ``labels.txt``. It runs at
``make serve`` set-up, where torch is not installed, so the graph is written with numpy
and ``onnx.helper`` only. Benchmarks need the real architecture's cost, not its accuracy:
the weights are random (fixed seed, so every build is byte-identical), He-initialised so
activations keep their scale through the 27 convolutions, with BatchNorm already folded
into each convolution's weights and bias as in an exported inference graph.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mobilenet_blocks import BLOCKS, STEM_CHANNELS

ROOT = Path(__file__).resolve().parent.parent
NAME = "mobilenet_v1"
SIZE = 224
NUM_CLASSES = 1000
OPSET = 17
# Opset 17's IR version: older ONNX Runtime releases refuse files stamped newer than they know.
IR_VERSION = 8
SEED = 0
BN_EPS = 1e-5


MODEL_YAML = f"""\
# Written by tools/build_benchmark_model.py: random weights, for benchmarks only.
name: {NAME}
backend: onnx
artifact: model.onnx
labels: labels.txt
preprocessing:
  size: [{SIZE}, {SIZE}]
  resize: shorter_side_center_crop
  resize_ratio: 0.875
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  channel_order: RGB
  layout: NCHW
scheduler:
  kind: auto
"""


class GraphBuilder:
    """Collects nodes and initializers; each ``conv_relu`` is one folded Conv+BN+ReLU."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def conv_relu(
        self, x: str, name: str, in_ch: int, out_ch: int, kernel: int, stride: int, groups: int
    ) -> str:
        fan_in = in_ch // groups * kernel * kernel
        weight = self.rng.normal(
            0.0, np.sqrt(2.0 / fan_in), (out_ch, in_ch // groups, kernel, kernel)
        )
        weight, bias = self._fold_batch_norm(weight.astype(np.float32))
        pad = kernel // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self.constant(f"{name}.weight", weight), self.constant(f"{name}.bias", bias)],
                [f"{name}.conv"],
                name=f"{name}.conv",
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
                group=groups,
            )
        )
        self.nodes.append(helper.make_node("Relu", [f"{name}.conv"], [name], name=f"{name}.relu"))
        return name

    def _fold_batch_norm(self, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold a near-identity BatchNorm (random statistics) into the conv, as exporters do.

        BN(conv(x)) = gamma * (W x - mean) / sqrt(var + eps) + beta
                    = (scale * W) x + (beta - scale * mean),  scale = gamma / sqrt(var + eps).
        """
        channels = weight.shape[0]
        gamma = self.rng.uniform(0.9, 1.1, channels)
        beta = self.rng.normal(0.0, 0.05, channels)
        mean = self.rng.normal(0.0, 0.05, channels)
        var = self.rng.uniform(0.9, 1.1, channels)
        scale = gamma / np.sqrt(var + BN_EPS)
        return weight * scale[:, None, None, None], beta - scale * mean


def build_graph(seed: int = SEED) -> onnx.ModelProto:
    """The whole MobileNet v1 1.0 inference graph with dynamic batch size."""
    g = GraphBuilder(np.random.default_rng(seed))
    x = g.conv_relu("input", "stem", 3, STEM_CHANNELS, 3, stride=2, groups=1)
    channels = STEM_CHANNELS
    for i, (out_ch, stride) in enumerate(BLOCKS, start=1):
        x = g.conv_relu(x, f"block{i}.dw", channels, channels, 3, stride, groups=channels)
        x = g.conv_relu(x, f"block{i}.pw", channels, out_ch, 1, 1, groups=1)
        channels = out_ch
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten", axis=1))
    # Gemm computes features @ B^T + C with transB=1, the layout of a framework's Linear.
    fc_weight = g.rng.normal(0.0, np.sqrt(1.0 / channels), (NUM_CLASSES, channels))
    g.nodes.append(
        helper.make_node(
            "Gemm",
            [
                "features",
                g.constant("fc.weight", fc_weight),
                g.constant("fc.bias", np.zeros(NUM_CLASSES)),
            ],
            ["logits"],
            name="fc",
            transB=1,
        )
    )
    graph = helper.make_graph(
        g.nodes,
        NAME,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", NUM_CLASSES])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="batchserve/tools/build_benchmark_model.py",
    )
    model.ir_version = IR_VERSION
    return model


def parameter_count(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def write_config(folder: Path) -> None:
    """model.yaml and labels.txt, validated by the server's own parser when it is importable."""
    (folder / "model.yaml").write_text(MODEL_YAML)
    (folder / "labels.txt").write_text("".join(f"class_{i}\n" for i in range(NUM_CLASSES)))
    sys.path.insert(0, str(ROOT / "src"))
    from batchserve.config import load_model_config

    load_model_config(folder / "model.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models-bench", help="model repository")
    args = parser.parse_args()

    folder = args.out / NAME
    model_path = folder / "1" / "model.onnx"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model = build_graph()
    onnx.checker.check_model(model, full_check=True)
    # Written beside then renamed: an interrupted build never leaves a half file for make to trust.
    partial = model_path.with_suffix(".onnx.partial")
    onnx.save(model, partial)
    write_config(folder)
    partial.replace(model_path)
    params = parameter_count(model)
    print(f"{model_path}: MobileNet v1 1.0, {params:,} parameters ({params / 1e6:.2f}M)")


if __name__ == "__main__":
    main()
