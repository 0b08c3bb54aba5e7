"""The image decode a user would write by hand: frozen, on purpose.

The peers and the in-process ceiling of bench/compare.py decode with this, not with
`batchserve.codecs.images.ImageCodec`. It is a copy of what ImageCodec did when issue
13 was filed (JPEG draft mode to the smallest scale that covers the input, EXIF
orientation, a bilinear resize of the crop box, float normalisation in numpy, a
contiguous copy per image), and it must not follow ImageCodec when that gets faster:
the issue's targets are against the ceiling "as it is measured today" and against
peers "as a user would write them", so making batchserve's codec faster must move
batchserve's rows only. `--peer-codec batchserve` gives the peers batchserve's current
codec instead, to compare the serving machinery alone.

The preprocessing is read from the model's model.yaml with PyYAML, as a user reads
their own config; malformed images raise ValueError (the peers answer 500, which
the benchmark never sends).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageOps

_JPEG_FORMATS = {"JPEG", "MPO"}
_EXIF_ORIENTATION = 0x0112
_QUARTER_TURNS = {5, 6, 7, 8}


@dataclass(frozen=True)
class Preprocessing:
    """model.yaml's preprocessing block, with batchserve's defaults as of issue 13."""

    size: tuple[int, int] = (224, 224)
    resize: str = "shorter_side_center_crop"
    resize_ratio: float = 0.875
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"
    layout: str = "NCHW"

    @classmethod
    def of(cls, block: dict[str, Any]) -> Preprocessing:
        known = {k: v for k, v in block.items() if k in cls.__dataclass_fields__}
        for key in ("size", "mean", "std"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    @classmethod
    def read(cls, model_dir: Path) -> Preprocessing:
        config = yaml.safe_load((model_dir / "model.yaml").read_text()) or {}
        return cls.of(config.get("preprocessing") or {})


class HandCodec:
    """JPEG/PNG bytes -> a float32 [1, C, H, W] (or NHWC) tensor, as ImageCodec did."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.preprocessing = p = preprocessing
        mean = np.asarray(p.mean, dtype=np.float32)
        std = np.asarray(p.std, dtype=np.float32)
        if p.channel_order == "BGR":
            mean, std = mean[::-1], std[::-1]
        # (x / 255 - mean) / std  ==  x * scale + offset
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._offset = (-mean / std).astype(np.float32)

    def decode(self, data: bytes) -> np.ndarray:
        image = Image.open(io.BytesIO(data))
        height, width = self.preprocessing.size
        orientation = _orientation(image)
        if image.format in _JPEG_FORMATS:
            # libjpeg's smallest scale that still covers the crop, on the image as shown.
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
        image = image.convert("RGB")
        box = self._crop_box(image.size)
        image = image.resize((width, height), Image.Resampling.BILINEAR, box=box)
        return self._normalise(np.asarray(image))

    def _crop_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        w, h = size
        p = self.preprocessing
        if p.resize == "stretch":
            return (0.0, 0.0, float(w), float(h))
        out_h, out_w = p.size
        scale = min(w / (out_w / p.resize_ratio), h / (out_h / p.resize_ratio))
        crop_w, crop_h = out_w * scale, out_h * scale
        left, top = (w - crop_w) / 2, (h - crop_h) / 2
        return (left, top, left + crop_w, top + crop_h)

    def _normalise(self, pixels: np.ndarray) -> np.ndarray:
        if self.preprocessing.channel_order == "BGR":
            pixels = pixels[..., ::-1]
        tensor = pixels.astype(np.float32) * self._scale + self._offset
        if self.preprocessing.layout == "NCHW":
            tensor = tensor.transpose(2, 0, 1)
        return np.ascontiguousarray(tensor[np.newaxis])


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1
