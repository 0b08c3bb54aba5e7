"""The docgen text model: its corpus, its torch definition, and its one-step ONNX graph.

A byte-level GRU language model trained on the Python standard library's own
docstrings. Bytes are tokens 0..255 and token 256 is both the start and the end
of a document, so the vocabulary is 257 and no tokenizer file is needed.

Why a GRU: its whole state per sequence is one [layers, hidden] block, so a
continuous batcher gathers the rows of the running sequences, runs one call and
scatters them back. A transformer's KV cache would need per-sequence lengths and
masks for the same thing.

The ONNX graph is built here with onnx.helper from the trained weights (not by the
torch exporter) so that it can use the ONNX GRU operator's `sequence_lens` input: a
batch of prompts of different lengths, right-padded, is prefilled in one call, and
each row's returned state is the state after its own last token. One decode step
is the same call with T = 1.

    inputs:  tokens  int64 [B, T]   (right-padded)
             lengths int32 [B]      (1 <= lengths <= T)
             state   float [L, B, H]
    outputs: logits  float [B, V]   (next-token logits after each row's last token)
             state_out float [L, B, H]
"""

from __future__ import annotations

import ast
import hashlib
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VOCAB = 257
EOS = 256
OPSET = 17
IR_VERSION = 8

# Skipped: the test suite (its docstrings say "Test that..."), and GUI and demo packages.
_SKIP_TOP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip"}


@dataclass(frozen=True)
class Document:
    """One docstring with its heading ("def name(args):" or "class Name:")."""

    source: str  # the file it came from, relative to the stdlib folder
    text: str


def stdlib_documents(root: Path | None = None) -> list[Document]:
    """Every docstring of the standard library's modules, classes and functions.

    Read by parsing the source with `ast`, never importing it: importing the whole
    stdlib runs module code (`antigravity` opens a browser) and depends on what is
    installed, while parsing is offline, side-effect free and deterministic for one
    Python version.
    """
    root = root or Path(sysconfig.get_paths()["stdlib"])
    documents: list[Document] = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in _SKIP_TOP or "test" in parts or "tests" in parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        relative = "/".join(parts)
        module = relative.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        documents.extend(Document(relative, text) for text in _docstrings(tree, module))
    return documents


def _docstrings(tree: ast.Module, module: str) -> Iterator[str]:
    doc = ast.get_docstring(tree)
    if doc:
        yield f"module {module}:\n{doc}"
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            heading = f"def {node.name}({ast.unparse(node.args)}):"
        elif isinstance(node, ast.ClassDef):
            heading = f"class {node.name}:"
        else:
            continue
        doc = ast.get_docstring(node)
        if doc:
            yield f"{heading}\n{doc}"


def held_out(document: Document, fraction: float = 0.1) -> bool:
    """Split by source file, so that no file's docstrings land on both sides."""
    digest = hashlib.sha256(document.source.encode()).digest()
    return int.from_bytes(digest[:4], "little") < fraction * 2**32


def encode_stream(documents: list[Document]) -> np.ndarray:
    """One token stream: EOS, document bytes, EOS, document bytes, ... EOS."""
    pieces: list[np.ndarray] = [np.array([EOS], np.int64)]
    for document in documents:
        pieces.append(np.frombuffer(document.text.encode("utf-8"), np.uint8).astype(np.int64))
        pieces.append(np.array([EOS], np.int64))
    return np.concatenate(pieces)


# -- ONNX ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GruWeights:
    """The trained weights, as numpy, in torch's layout (gates r, z, n)."""

    embedding: np.ndarray  # [V, E]
    weight_ih: list[np.ndarray]  # per layer [3H, in]
    weight_hh: list[np.ndarray]  # per layer [3H, H]
    bias_ih: list[np.ndarray]  # per layer [3H]
    bias_hh: list[np.ndarray]  # per layer [3H]
    out_weight: np.ndarray  # [V, H]
    out_bias: np.ndarray  # [V]

    @property
    def layers(self) -> int:
        return len(self.weight_ih)

    @property
    def hidden(self) -> int:
        return self.weight_hh[0].shape[1]


def _zrn(gates: np.ndarray) -> np.ndarray:
    """torch orders a GRU's gate blocks r, z, n; ONNX orders them z, r, h."""
    r, z, n = np.split(gates, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def build_step_graph(weights: GruWeights) -> onnx.ModelProto:
    """The one-call-per-step graph described in the module docstring."""
    layers, hidden = weights.layers, weights.hidden
    f32 = np.float32
    initializers = [
        numpy_helper.from_array(weights.embedding.astype(f32), "embedding"),
        numpy_helper.from_array(weights.out_weight.astype(f32), "out_weight"),
        numpy_helper.from_array(weights.out_bias.astype(f32), "out_bias"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
    ]
    nodes = [
        helper.make_node("Gather", ["embedding", "tokens"], ["embedded"]),  # [B, T, E]
        helper.make_node("Transpose", ["embedded"], ["x0"], perm=[1, 0, 2]),  # [T, B, E]
        helper.make_node("Split", ["state"], [f"h{k}" for k in range(layers)], axis=0)
        if layers > 1
        else helper.make_node("Identity", ["state"], ["h0"]),
    ]
    for k in range(layers):
        initializers += [
            numpy_helper.from_array(_zrn(weights.weight_ih[k]).astype(f32)[None], f"W{k}"),
            numpy_helper.from_array(_zrn(weights.weight_hh[k]).astype(f32)[None], f"R{k}"),
            numpy_helper.from_array(
                np.concatenate([_zrn(weights.bias_ih[k]), _zrn(weights.bias_hh[k])]).astype(f32)[
                    None
                ],
                f"B{k}",
            ),
        ]
        nodes += [
            helper.make_node(
                "GRU",
                [f"x{k}", f"W{k}", f"R{k}", f"B{k}", "lengths", f"h{k}"],
                [f"y{k}", f"yh{k}"],
                hidden_size=hidden,
                linear_before_reset=1,  # torch's GRU: r * (W_hn h + b_hn)
            ),
            helper.make_node("Squeeze", [f"y{k}", "axis1"], [f"x{k + 1}"]),  # [T, B, H]
        ]
    nodes += [
        helper.make_node("Concat", [f"yh{k}" for k in range(layers)], ["state_out"], axis=0),
        helper.make_node("Squeeze", [f"yh{layers - 1}", "axis0"], ["top"]),  # [B, H]
        helper.make_node("Gemm", ["top", "out_weight", "out_bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "docgen_step",
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"]),
            helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [layers, "batch", hidden]),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", VOCAB]),
            helper.make_tensor_value_info(
                "state_out", TensorProto.FLOAT, [layers, "batch", hidden]
            ),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model
