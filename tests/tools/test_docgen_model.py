"""The shipped docgen model: small, valid, trained (its report says so), and one step of
it is one ONNX Runtime call with explicit state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

from batchserve.config import load_model_config

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "docgen"


def test_it_is_small_valid_and_declares_a_generate_task() -> None:
    path = MODEL_DIR / "1" / "model.onnx"
    assert path.stat().st_size < 4_000_000
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    config = load_model_config(MODEL_DIR / "model.yaml")
    assert config.task == "generate" and config.generate is not None
    assert config.generate.tokenizer == "bytes" and config.generate.eos_token == 256


def test_its_training_report_shows_a_held_out_loss_well_below_chance() -> None:
    report = json.loads((MODEL_DIR / "training.json").read_text())
    # Chance is ln(257) = 5.55 nats per byte; a unigram model of English text is ~3.
    assert report["held_out_loss_nats_per_byte"] < 2.0
    perplexity = float(np.exp(report["held_out_loss_nats_per_byte"]))
    assert abs(report["held_out_perplexity"] - perplexity) < 0.01
    assert report["onnx_max_logit_difference"] < 1e-3


def test_greedy_continuation_of_a_docstring_heading_is_text() -> None:
    session = onnxruntime.InferenceSession(
        str(MODEL_DIR / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    prompt = [256, *b"def read_text(self):\n"]
    state = np.zeros((2, 1, 192), np.float32)
    tokens = np.array([prompt], np.int64)
    out: list[int] = []
    for _ in range(40):
        logits, state = session.run(
            None,
            {"tokens": tokens, "lengths": np.array([tokens.shape[1]], np.int32), "state": state},
        )
        token = int(logits[0].argmax())
        if token == 256:
            break
        out.append(token)
        tokens = np.array([[token]], np.int64)
    text = bytes(out).decode("utf-8")
    assert len(text) > 10
    assert sum(c.isalpha() or c == " " for c in text) / len(text) > 0.8
