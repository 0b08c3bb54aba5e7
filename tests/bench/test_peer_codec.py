"""The peers' decode (bench/peers/hand_codec.py, common.py): frozen, but the same tensor.

The hand-written decode is a copy of batchserve's ImageCodec as it was when issue 13
was filed; it must stay what a user writes even when batchserve's codec changes. So
these tests hold it to the model's input (shape, dtype, layout) and to batchserve's
codec only loosely: a faster codec may differ by a resampling detail, not by an image.
"""

from __future__ import annotations

import io

import common
import numpy as np
import pytest
from hand_codec import HandCodec, Preprocessing
from PIL import Image

from batchserve.codecs.images import ImageCodec
from batchserve.config import load_model_config
from tests.bench import ROOT

MOBILENET = ROOT / "models-bench" / "mobilenet_v1"
DEMO = ROOT / "models" / "shapes"
JPEG = ROOT / "samples" / "bench_640x480.jpg"


def image_bytes(fmt: str, size=(640, 480), orientation: int | None = None) -> bytes:
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(out, fmt, **({"exif": exif.tobytes()} if orientation else {}))
    return out.getvalue()


@pytest.mark.parametrize("model", [DEMO, MOBILENET], ids=["demo", "mobilenet"])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_the_same_tensor_as_batchserves_codec(model, fmt):
    if not (model / "model.yaml").is_file():
        pytest.skip(f"{model} is not built (make bench-model)")
    data = JPEG.read_bytes() if fmt == "JPEG" and JPEG.is_file() else image_bytes(fmt)
    hand = HandCodec(Preprocessing.read(model)).decode(data)
    config = load_model_config(model / "model.yaml")
    assert config.preprocessing is not None
    ours = ImageCodec(config.preprocessing).decode(data)
    assert hand.shape == ours.shape and hand.dtype == np.float32
    assert hand.flags.c_contiguous
    assert float(np.abs(hand - ours).mean()) < 0.05


def test_exif_orientation_turns_the_image_as_shown():
    p = Preprocessing(size=(32, 48), resize="stretch")
    upright = HandCodec(p).decode(image_bytes("JPEG", size=(60, 40)))
    turned = HandCodec(p).decode(image_bytes("JPEG", size=(40, 60), orientation=6))
    assert upright.shape == turned.shape == (1, 3, 32, 48)


def test_preprocessing_defaults_and_the_yaml_block():
    assert Preprocessing.of({}) == Preprocessing()
    demo = Preprocessing.read(DEMO)
    assert demo.size == (64, 64) and demo.resize == "stretch" and demo.mean == (0.5, 0.5, 0.5)
    assert Preprocessing.of({"layout": "NHWC", "size": [8, 8], "unknown": 1}).layout == "NHWC"


def test_nhwc_and_bgr():
    data = image_bytes("PNG", size=(16, 16))
    rgb = HandCodec(Preprocessing(size=(16, 16), resize="stretch", layout="NHWC")).decode(data)
    bgr = HandCodec(
        Preprocessing(size=(16, 16), resize="stretch", layout="NHWC", channel_order="BGR")
    ).decode(data)
    assert rgb.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(bgr[..., ::-1], rgb, atol=1e-6)  # same means and stds


def test_common_follows_peer_model_dir_and_peer_codec(monkeypatch):
    monkeypatch.setenv("PEER_MODEL_DIR", str(DEMO))
    monkeypatch.delenv("PEER_CODEC", raising=False)
    assert isinstance(common.image_codec(), HandCodec)
    monkeypatch.setenv("PEER_CODEC", "batchserve")
    assert isinstance(common.image_codec(), ImageCodec)
    with pytest.raises(ValueError, match="PEER_CODEC"):
        common.image_codec("pillow-simd")
    assert common.tensor_shape() == (1, 3, 64, 64)
    raw = np.arange(3 * 64 * 64, dtype=np.float32).tobytes()
    x = common.tensor_from_bytes(raw)
    assert x.shape == (1, 3, 64, 64) and x[0, 2, 63, 63] == 3 * 64 * 64 - 1
    session = common.ort_session(1)
    assert session.get_inputs()[0].shape[1:] == [3, 64, 64]
    top = common.top_k(session.run(None, {session.get_inputs()[0].name: x * 0})[0])
    assert len(top) == 5 and abs(sum(t["score"] for t in top)) <= 1.0
