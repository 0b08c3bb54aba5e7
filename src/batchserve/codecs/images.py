"""Images -> model input tensors: decode, resize, normalise, as a model's config says.

Decoding costs as much as inference on a CPU, so it is done once, at the
smallest scale that still serves the model: JPEG draft mode lets libjpeg
decode at 1/2, 1/4 or 1/8 scale when the image is much larger than the input.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from batchserve.config import ImagePreprocessing
from batchserve.errors import ImageTooLarge, InvalidInput, UnsupportedMediaType

IMAGE_MEDIA_TYPES = {"image/jpeg", "image/png", "image/webp"}
# What Pillow raises on malformed or truncated data, header or body: all the client's fault.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, struct.error)
_FORMATS = {"JPEG", "PNG", "WEBP"}


@dataclass(frozen=True)
class ImageCodec:
    """Turns encoded image bytes into one normalised tensor of shape [1, C, H, W] (or NHWC)."""

    preprocessing: ImagePreprocessing

    def __post_init__(self) -> None:
        p = self.preprocessing
        mean = np.asarray(p.mean, dtype=np.float32)
        std = np.asarray(p.std, dtype=np.float32)
        if p.channel_order == "BGR":
            mean, std = mean[::-1], std[::-1]
        # x_norm = (x / 255 - mean) / std  ==  x * scale + offset, one fused pass
        object.__setattr__(self, "_scale", (1.0 / (255.0 * std)).astype(np.float32))
        object.__setattr__(self, "_offset", (-mean / std).astype(np.float32))

    def decode(self, data: bytes) -> np.ndarray:
        image = open_image(data, self.preprocessing.max_pixels)
        height, width = self.preprocessing.size
        box = self._crop_box(image.size)
        if image.format == "JPEG":
            # Ask libjpeg for the smallest scale that still covers what we need.
            crop_w, crop_h = box[2] - box[0], box[3] - box[1]
            need = (
                max(1, int(image.size[0] * width / crop_w)),
                max(1, int(image.size[1] * height / crop_h)),
            )
            original = image.size
            try:
                image.draft("RGB", need)
            except _DECODE_ERRORS as exc:
                raise InvalidInput(f"image could not be decoded: {exc}") from exc
            if image.size != original:
                sx, sy = image.size[0] / original[0], image.size[1] / original[1]
                box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        try:
            image = image.convert("RGB")
            image = image.resize((width, height), Image.Resampling.BILINEAR, box=box)
        except _DECODE_ERRORS as exc:
            raise InvalidInput(f"image could not be decoded: {exc}") from exc
        return self._normalise(np.asarray(image))

    def _crop_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        w, h = size
        p = self.preprocessing
        if p.resize == "stretch":
            return (0.0, 0.0, float(w), float(h))
        # Shorter side scaled to size/ratio, then a centre crop of `size`: in source pixels.
        out_h, out_w = p.size
        scale = min(w / (out_w / p.resize_ratio), h / (out_h / p.resize_ratio))
        crop_w, crop_h = out_w * scale, out_h * scale
        left, top = (w - crop_w) / 2, (h - crop_h) / 2
        return (left, top, left + crop_w, top + crop_h)

    def _normalise(self, pixels: np.ndarray) -> np.ndarray:
        if self.preprocessing.channel_order == "BGR":
            pixels = pixels[..., ::-1]
        tensor = pixels.astype(np.float32) * self._scale + self._offset  # type: ignore[attr-defined]
        if self.preprocessing.layout == "NCHW":
            tensor = tensor.transpose(2, 0, 1)
        return np.ascontiguousarray(tensor[np.newaxis])


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open (header only) and check an image: non-empty, a known format, within the pixel bound."""
    if not data:
        raise InvalidInput("the image is empty (zero bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, past its own global bound; we apply the model's own.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise InvalidInput("the body is not a decodable JPEG, PNG or WebP image") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image refused: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise InvalidInput(f"the body is not a decodable JPEG, PNG or WebP image: {exc}") from exc
    if image.format not in _FORMATS:
        raise UnsupportedMediaType(
            f"image format {image.format} is not supported; send JPEG, PNG or WebP"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels, over the bound of {max_pixels}"
        )
    if width == 0 or height == 0:
        raise InvalidInput("the image has no pixels")
    return image
