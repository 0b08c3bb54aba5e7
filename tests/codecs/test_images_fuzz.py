"""Fuzz target: the image decoder. Any bytes give a tensor of the model's shape with
finite values, or a client error (InvalidInput, ImageTooLarge, UnsupportedMediaType)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from batchserve.codecs.images import ImageCodec
from batchserve.config import ImagePreprocessing
from batchserve.errors import ImageTooLarge, InvalidInput, UnsupportedMediaType

pytestmark = pytest.mark.fuzz

CLIENT_ERRORS = (InvalidInput, ImageTooLarge, UnsupportedMediaType)
CODECS = [
    ImageCodec(ImagePreprocessing(size=(16, 16), resize="stretch", max_pixels=1_000_000)),
    ImageCodec(ImagePreprocessing(size=(24, 32), max_pixels=1_000_000, layout="NHWC")),
]
MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"]
FORMATS = {"JPEG": ["L", "RGB", "CMYK"], "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
           "WEBP": ["RGB", "RGBA"], "MPO": ["RGB"], "GIF": ["P"], "BMP": ["RGB"]}  # fmt: skip


def _encode(image: Image.Image, fmt: str, orientation: int | None) -> bytes:
    buf = io.BytesIO()
    extra: dict = {}
    if orientation is not None and fmt in ("JPEG", "PNG", "WEBP", "MPO"):
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    if fmt == "MPO":
        extra.update(save_all=True, append_images=[image.resize((4, 4))])
    image.save(buf, fmt, **extra)
    return buf.getvalue()


@st.composite
def encoded_images(draw: st.DrawFn) -> bytes:
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    orientation = draw(st.none() | st.integers(0, 9))
    return _encode(image, fmt, orientation)


def _check(data: bytes, codec: ImageCodec) -> None:
    try:
        tensor = codec.decode(data)
    except CLIENT_ERRORS:
        return
    p = codec.preprocessing
    height, width = p.size
    expected = (1, 3, height, width) if p.layout == "NCHW" else (1, height, width, 3)
    assert tensor.shape == expected
    assert tensor.dtype == np.float32
    assert np.isfinite(tensor).all()


@given(encoded_images(), st.sampled_from(CODECS))
def test_any_image_a_client_sends_decodes_or_is_refused(data: bytes, codec: ImageCodec) -> None:
    _check(data, codec)


@given(encoded_images(), st.data(), st.sampled_from(CODECS))
def test_a_damaged_image_decodes_or_is_refused(data: bytes, draw: st.DataObject, codec) -> None:
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 8))):
        where = draw.draw(st.integers(0, len(mutated) - 1))
        mutated[where] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(mutated)))
    _check(bytes(mutated[:cut] if draw.draw(st.booleans()) else mutated), codec)


@given(st.binary(max_size=512), st.sampled_from(CODECS))
@example(b"\xff\xd8\xff", CODECS[0])
@example(b"\x89PNG\r\n\x1a\n", CODECS[0])
def test_any_bytes_decode_or_are_refused(data: bytes, codec: ImageCodec) -> None:
    _check(data, codec)
