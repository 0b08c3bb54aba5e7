"""The shipped demo model classifies the shipped sample JPEGs as their file names say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from batchserve.config import load_model_config

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "shapes"
SAMPLES = sorted(p for p in (ROOT / "samples").glob("*.jpg") if p.name != "bench_640x480.jpg")
PREPROCESSING = load_model_config(MODEL_DIR / "model.yaml").preprocessing


def preprocess(path: Path) -> np.ndarray:
    """The serving pipeline's steps for `resize: stretch`, RGB, NCHW, as model.yaml declares."""
    assert PREPROCESSING is not None
    assert PREPROCESSING.resize == "stretch"
    height, width = PREPROCESSING.size
    with Image.open(path) as image:
        resized = image.convert("RGB").resize((width, height), Image.BILINEAR)
    pixels = np.asarray(resized, np.float32) / 255.0
    pixels = (pixels - np.array(PREPROCESSING.mean, np.float32)) / np.array(
        PREPROCESSING.std, np.float32
    )
    return pixels.transpose(2, 0, 1)[None]


@pytest.fixture(scope="module")
def session() -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(
        str(MODEL_DIR / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )


def test_samples_cover_every_shape() -> None:
    assert len(SAMPLES) >= 6
    assert {p.stem.split("_")[1] for p in SAMPLES} >= {
        "circle", "square", "triangle", "star", "cross", "hexagon"
    }  # fmt: skip


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_classifies_as_its_file_name(
    session: onnxruntime.InferenceSession, path: Path
) -> None:
    labels = (MODEL_DIR / "labels.txt").read_text().splitlines()
    (logits,) = session.run(["logits"], {"input": preprocess(path)})
    assert labels[int(logits[0].argmax())] == path.stem.replace("_", " ")
