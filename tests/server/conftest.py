from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from batchserve.codecs.images import ImageCodec
from batchserve.config import load_model_config
from tests.live_server import DEMO_REPOSITORY, SAMPLES, LiveServer


@pytest.fixture(scope="session", autouse=True)
def _layout_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One layout cache for the whole session: each model is profiled once."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BATCHSERVE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def demo_server() -> Iterator[LiveServer]:
    with LiveServer([DEMO_REPOSITORY]) as server:
        yield server


@pytest.fixture(scope="session")
def samples() -> dict[str, bytes]:
    """label -> JPEG bytes of the shipped sample images."""
    found = {
        p.stem.replace("_", " "): p.read_bytes()
        for p in sorted(SAMPLES.glob("*.jpg"))
        if not p.stem.startswith("bench")
    }
    assert len(found) >= 4
    return found


class InProcessDemo:
    """The demo model run directly with ONNX Runtime: what the server must agree with."""

    def __init__(self, model_dir: Path) -> None:
        config = load_model_config(model_dir / "model.yaml")
        assert config.preprocessing is not None
        self.codec = ImageCodec(config.preprocessing)
        self.session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"))
        self.labels = (model_dir / "labels.txt").read_text().split("\n")
        self.input = self.session.get_inputs()[0].name

    def logits(self, image: bytes) -> np.ndarray:
        return self.session.run(None, {self.input: self.codec.decode(image)})[0]

    def top1(self, image: bytes) -> str:
        return self.labels[int(np.argmax(self.logits(image)))]


@pytest.fixture(scope="session")
def in_process() -> InProcessDemo:
    return InProcessDemo(DEMO_REPOSITORY / "shapes")
