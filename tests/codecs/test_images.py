from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from batchserve.codecs.images import ImageCodec
from batchserve.config import ImagePreprocessing
from batchserve.errors import ImageTooLarge, InvalidInput, UnsupportedMediaType


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _quadrants(w: int, h: int) -> Image.Image:
    """Red left half, blue right half, a green square in the middle."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2 :] = (0, 0, 255)
    a[h // 2 - h // 8 : h // 2 + h // 8, w // 2 - h // 8 : w // 2 + h // 8] = (0, 255, 0)
    return Image.fromarray(a)


PLAIN = ImagePreprocessing(size=(32, 32), resize="stretch", mean=(0, 0, 0), std=(1, 1, 1))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_decodes_each_format_to_a_normalised_nchw_tensor(fmt):
    data = _encode(_quadrants(64, 64), fmt)
    tensor = ImageCodec(PLAIN).decode(data)
    assert tensor.shape == (1, 3, 32, 32)
    assert tensor.dtype == np.float32
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0
    # left column red, right column blue
    assert tensor[0, 0, 16, 1] > 0.8 and tensor[0, 2, 16, 1] < 0.2
    assert tensor[0, 2, 16, 30] > 0.8 and tensor[0, 0, 16, 30] < 0.2


def test_mean_std_channel_order_and_layout_follow_the_config():
    data = _encode(Image.new("RGB", (8, 8), (255, 0, 0)), "PNG")
    prep = ImagePreprocessing(
        size=(4, 4),
        resize="stretch",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.25, 0.5),
        channel_order="BGR",
        layout="NHWC",
    )
    tensor = ImageCodec(prep).decode(data)
    assert tensor.shape == (1, 4, 4, 3)
    # BGR: red lands in the last channel; (1 - 0.5) / 0.5 = 1, (0 - 0.5) / 0.25 = -2
    np.testing.assert_allclose(tensor[0, 0, 0], [-1.0, -2.0, 1.0], atol=1e-6)


def test_shorter_side_centre_crop_keeps_the_centre():
    prep = ImagePreprocessing(
        size=(16, 16),
        resize="shorter_side_center_crop",
        resize_ratio=0.5,
        mean=(0, 0, 0),
        std=(1, 1, 1),
    )
    tensor = ImageCodec(prep).decode(_encode(_quadrants(400, 200), "PNG"))
    # the crop is the middle half of the height: the green square fills its centre
    assert tensor[0, 1, 8, 8] > 0.9
    assert tensor[0, 1, 0, 0] < 0.1


def test_jpeg_draft_mode_matches_full_decode_closely():
    big = _quadrants(1920, 1080)
    data = _encode(big, "JPEG", quality=95)
    prep = ImagePreprocessing(size=(64, 64), mean=(0, 0, 0), std=(1, 1, 1))
    drafted = ImageCodec(prep).decode(data)
    full = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = full.size
    crop = min(w, h) * 0.875
    box = ((w - crop) / 2, (h - crop) / 2, (w + crop) / 2, (h + crop) / 2)
    reference = np.asarray(full.resize((64, 64), Image.Resampling.BILINEAR, box=box)) / 255.0
    assert np.abs(drafted[0].transpose(1, 2, 0) - reference).mean() < 0.03


def test_empty_body_is_invalid():
    with pytest.raises(InvalidInput, match="empty"):
        ImageCodec(PLAIN).decode(b"")


def test_garbage_is_invalid():
    with pytest.raises(InvalidInput, match="not a decodable"):
        ImageCodec(PLAIN).decode(b"this is not an image" * 10)


def test_truncated_jpeg_is_invalid():
    data = _encode(_quadrants(256, 256), "JPEG")
    with pytest.raises(InvalidInput):
        ImageCodec(PLAIN).decode(data[: len(data) // 2])


def test_gif_is_an_unsupported_media_type():
    with pytest.raises(UnsupportedMediaType, match="GIF"):
        ImageCodec(PLAIN).decode(_encode(Image.new("RGB", (8, 8)), "GIF"))


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _encode(Image.new("1", (12000, 12000)), "PNG")  # a few KB, 144 M pixels
    assert len(bomb) < 100_000
    prep = ImagePreprocessing(size=(32, 32), max_pixels=10_000_000)
    with pytest.raises(ImageTooLarge, match="12000x12000"):
        ImageCodec(prep).decode(bomb)


# --- what cameras and scanners write ---------------------------------------------------


def test_a_16_bit_greyscale_png_is_scaled_not_clipped():
    """Grey 78/255 stored as 16 bits (78 * 257) decodes as grey 78, not as white."""
    grey16 = Image.fromarray(np.full((16, 16), 78 * 257, np.uint16))
    assert grey16.mode in ("I;16", "I")
    data = _encode(grey16, "PNG")
    tensor = ImageCodec(PLAIN).decode(data)
    np.testing.assert_allclose(tensor, 78 / 255, atol=1 / 255)


def test_a_16_bit_gradient_keeps_its_whole_range():
    values = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    tensor = ImageCodec(PLAIN).decode(_encode(Image.fromarray(values), "PNG"))
    assert tensor.min() < 0.05 and tensor.max() > 0.95
    assert np.all(np.diff(tensor[0, 0].mean(axis=1)) >= -1e-6)  # rows get brighter


def _mpo(first: Image.Image, preview: Image.Image) -> bytes:
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[preview])
    return buf.getvalue()


def test_a_camera_jpeg_with_a_preview_mpo_decodes_as_its_first_image():
    main = _quadrants(64, 64)
    data = _mpo(main, Image.new("RGB", (16, 16), (0, 255, 0)))
    assert Image.open(io.BytesIO(data)).format == "MPO"
    tensor = ImageCodec(PLAIN).decode(data)
    expected = ImageCodec(PLAIN).decode(_encode(main, "JPEG"))
    np.testing.assert_allclose(tensor, expected, atol=0.02)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation):
    """A photo stored rotated with an Orientation tag is decoded as it is displayed."""
    upright = _quadrants(64, 48)
    stored = {3: upright.rotate(180), 6: upright.rotate(90, expand=True),
              8: upright.rotate(-90, expand=True)}[orientation]  # fmt: skip
    exif = Image.Exif()
    exif[0x0112] = orientation
    for fmt in ("JPEG", "PNG", "WEBP"):
        data = _encode(stored, fmt, exif=exif.tobytes())
        tensor = ImageCodec(PLAIN).decode(data)
        expected = ImageCodec(PLAIN).decode(_encode(upright, fmt))
        np.testing.assert_allclose(tensor, expected, atol=0.08, err_msg=fmt)


def test_a_broken_exif_block_is_ignored_not_an_error():
    data = _encode(_quadrants(32, 32), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    tensor = ImageCodec(PLAIN).decode(data)
    assert tensor.shape == (1, 3, 32, 32)
