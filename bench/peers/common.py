"""What the ONNX peer servers share: the same model, the same preprocessing, the same answer.

Every ONNX Runtime peer (Flask + ORT, LitServe, Ray Serve, the FastAPI pool) decodes
with batchserve's own `ImageCodec` and runs the same model file, so the comparison
measures the serving machinery (HTTP, queues, batching, processes), not a different
JPEG decoder. Only the seed's design (`flask_app.py` with PEER_BACKEND=torch) decodes
the way the seed did.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from batchserve.codecs.images import ImageCodec
from batchserve.config import load_model_config

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(os.environ.get("PEER_MODEL_DIR", ROOT / "models-bench" / "mobilenet_v1"))
TOP_K = 5


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
    path = MODEL_DIR / "1" / "model.onnx"
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def image_codec() -> ImageCodec:
    config = load_model_config(MODEL_DIR / "model.yaml")
    assert config.preprocessing is not None, "the benchmark model declares its preprocessing"
    return ImageCodec(config.preprocessing)


def top_k(logits: np.ndarray, k: int = TOP_K) -> list[dict[str, float | int]]:
    """Softmax top-k of one row of logits, the answer batchserve's /predict gives."""
    row = np.asarray(logits, dtype=np.float64).reshape(-1)
    exp = np.exp(row - row.max())
    scores = exp / exp.sum()
    best = np.argsort(scores)[::-1][:k]
    return [{"index": int(i), "score": float(scores[i])} for i in best]
