"""What the ONNX peer servers share: the same model, the same preprocessing, the same answer.

Every ONNX Runtime peer (Flask + ORT, LitServe, Ray Serve, the FastAPI pool) and the
in-process ceiling run the model in $PEER_MODEL_DIR (default: the MobileNet v1 benchmark
model) and decode with the same codec: by default the frozen hand-written decode of
`hand_codec.py` (what a user would write; it does not follow batchserve's codec), or
with PEER_CODEC=batchserve batchserve's own current `ImageCodec`, so that the
comparison measures the serving machinery alone. Each also answers raw float32
tensors on `/tensor` (`tensor_from_bytes`), for bench/compare.py's `--route tensor`.
Only the seed's design (`flask_app.py` with PEER_BACKEND=torch) decodes the way the
seed did.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
from hand_codec import HandCodec, Preprocessing

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = ROOT / "models-bench" / "mobilenet_v1"
CODECS = ("hand", "batchserve")
TOP_K = 5


class Decoder(Protocol):
    def decode(self, data: bytes) -> np.ndarray: ...


def model_dir() -> Path:
    """The model directory (model.yaml, 1/model.onnx), read when asked: callers set it late."""
    return Path(os.environ.get("PEER_MODEL_DIR", DEFAULT_MODEL_DIR))


def ort_threads() -> int:
    return int(os.environ.get("PEER_ORT_THREADS", "1"))


def ort_session(threads: int) -> ort.InferenceSession:
    """ONNX Runtime with its defaults but for the thread count, as a user would write it."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    path = model_dir() / "1" / "model.onnx"
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def image_codec(kind: str | None = None) -> Decoder:
    """The decoder of $PEER_CODEC (`hand`, the default, or `batchserve`)."""
    kind = kind or os.environ.get("PEER_CODEC", "hand")
    if kind == "hand":
        return HandCodec(Preprocessing.read(model_dir()))
    if kind == "batchserve":
        from batchserve.codecs.images import ImageCodec
        from batchserve.config import load_model_config

        config = load_model_config(model_dir() / "model.yaml")
        assert config.preprocessing is not None, "the model declares its preprocessing"
        return ImageCodec(config.preprocessing)
    raise ValueError(f"PEER_CODEC must be one of {CODECS}, not {kind!r}")


def tensor_shape() -> tuple[int, int, int, int]:
    """[1, 3, H, W]: what `/tensor` bodies hold, from model.yaml's preprocessing size."""
    return _tensor_shape(model_dir())


@cache
def _tensor_shape(directory: Path) -> tuple[int, int, int, int]:
    height, width = Preprocessing.read(directory).size
    return (1, 3, height, width)


def tensor_from_bytes(data: bytes) -> np.ndarray:
    """A `/tensor` body: the raw float32 bytes of one [1, 3, H, W] tensor, as sent."""
    return np.frombuffer(data, dtype=np.float32).reshape(tensor_shape())


def top_k(logits: np.ndarray, k: int = TOP_K) -> list[dict[str, float | int]]:
    """Softmax top-k of one row of logits, the answer batchserve's /predict gives."""
    row = np.asarray(logits, dtype=np.float64).reshape(-1)
    exp = np.exp(row - row.max())
    scores = exp / exp.sum()
    best = np.argsort(scores)[::-1][:k]
    return [{"index": int(i), "score": float(scores[i])} for i in best]
