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
from PIL import Image, ImageOps, UnidentifiedImageError

from batchserve.config import ImagePreprocessing
from batchserve.errors import ImageTooLarge, InvalidInput, UnsupportedMediaType

IMAGE_MEDIA_TYPES = {"image/jpeg", "image/png", "image/webp"}
# What Pillow raises on malformed or truncated data, header or body: all the client's fault.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, struct.error)
# MPO is a JPEG with more images after it (a camera's preview or a stereo pair):
# Pillow opens the first, which is the photo.
_JPEG_FORMATS = {"JPEG", "MPO"}
_FORMATS = {*_JPEG_FORMATS, "PNG", "WEBP"}
_EXIF_ORIENTATION = 0x0112
_QUARTER_TURNS = {5, 6, 7, 8}
# Greyscale wider than 8 bits; "I" is how Pillow may open a 16-bit PNG.
_WIDE_GREY = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


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
        # x_norm = (x / 255 - mean) / std  ==  x * scale + offset: one multiply from the
        # uint8 pixels straight into the output tensor, then one add in place. Shaped to
        # broadcast over the layout's channel axis.
        channels = (3, 1, 1) if p.layout == "NCHW" else (3,)
        scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(channels)
        object.__setattr__(self, "_scale", scale)
        object.__setattr__(self, "_offset", (-mean / std).astype(np.float32).reshape(channels))

    @property
    def tensor_shape(self) -> tuple[int, int, int, int]:
        """The shape `decode` returns: one image, in the configured layout."""
        height, width = self.preprocessing.size
        if self.preprocessing.layout == "NCHW":
            return (1, 3, height, width)
        return (1, height, width, 3)

    def decode(self, data: bytes) -> np.ndarray:
        image = open_image(data, self.preprocessing.max_pixels)
        height, width = self.preprocessing.size
        orientation = _orientation(image)
        try:
            if image.format in _JPEG_FORMATS:
                # Ask libjpeg for the smallest scale that still covers what we need,
                # reckoned on the image as displayed (a quarter turn swaps its sides).
                stored = image.size
                shown = stored[::-1] if orientation in _QUARTER_TURNS else stored
                box = self._crop_box(shown)
                need = (
                    max(1, int(shown[0] * width / (box[2] - box[0]))),
                    max(1, int(shown[1] * height / (box[3] - box[1]))),
                )
                image.draft("RGB", need[::-1] if orientation in _QUARTER_TURNS else need)
            if orientation != 1:
                image = ImageOps.exif_transpose(image)
            image = _to_rgb(image)
            box = self._crop_box(image.size)
            if image.size != (width, height) or box != (0.0, 0.0, float(width), float(height)):
                image = image.resize((width, height), Image.Resampling.BILINEAR, box=box)
            else:  # decoded at exactly the size needed: resize would only copy it
                image.load()
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
        """uint8 HWC pixels -> the float32 tensor, written once into its final layout
        (no float copy of the image, no transposed copy afterwards)."""
        if self.preprocessing.channel_order == "BGR":
            pixels = pixels[..., ::-1]
        if self.preprocessing.layout == "NCHW":
            pixels = pixels.transpose(2, 0, 1)
        tensor = np.empty(self.tensor_shape, dtype=np.float32)
        np.multiply(pixels, self._scale, out=tensor[0])  # type: ignore[attr-defined]
        tensor[0] += self._offset  # type: ignore[attr-defined]
        return tensor


def _orientation(image: Image.Image) -> int:
    """The EXIF Orientation (1-8; 1 = stored as displayed). A missing or broken EXIF
    block is orientation 1: the pixels are still good."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB. 16- and 32-bit greyscale (16-bit PNGs) is scaled to 0-255 first:
    Pillow's own conversion clips it, so that any grey above 255/65535 turns white."""
    if image.mode in _WIDE_GREY:
        grey = np.asarray(image, dtype=np.float32) * (255.0 / 65535.0)
        image = Image.fromarray(np.clip(grey + 0.5, 0, 255).astype(np.uint8), "L")
    # Pillow's convert copies even when the mode is already right.
    return image if image.mode == "RGB" else image.convert("RGB")


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
