"""A shape detector built on the demo classifier (models/shapes), as a batchserve Python model.

The picture is cut into cells the size of the classifier's input (64 x 64). A cell
holds an object when enough of its pixels have a saturated colour (the demo's shapes
are saturated, its backgrounds greyish); the object's box is where those pixels are,
and its label and score are the classifier's answer for the cell. Every cell of every
picture in a batch goes to ONNX Runtime in one call.

Served on /v1/models/detector/predict (an image in any of the server's image envelopes,
detections as JSON out) and on v2 infer (`image` UINT8 [N, H, W, 3] in; `boxes`,
`scores`, `classes` out, padded to the most detections in the request with class -1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw

from batchserve.codecs.images import open_image

#: A pixel counts as part of an object when its colour is this saturated and bright
#: (the demo's class colours have saturation >= 0.7 and value >= 0.5; its backgrounds
#: have saturation <= 0.22, a little more with noise).
SATURATION = 0.45
BRIGHTNESS = 90
#: A cell holds an object when at least this fraction of its pixels are such pixels.
MIN_FILL = 0.015


class Detector:
    """Boxes, labels and scores of the coloured shapes in a picture."""

    inputs = ({"name": "image", "datatype": "UINT8", "shape": [-1, -1, -1, 3]},)
    outputs = (
        {"name": "boxes", "datatype": "FP32", "shape": [-1, -1, 4]},
        {"name": "scores", "datatype": "FP32", "shape": [-1, -1]},
        {"name": "classes", "datatype": "INT64", "shape": [-1, -1]},
    )
    #: An ONNX Runtime session may be called from many threads, and predict writes
    #: nothing on self (`batchserve check examples/detector` agrees).
    concurrency_safe = True
    #: decode gets the image bytes, from a raw body, a multipart file, a URL or base64.
    takes_images = True

    def load(self, version_dir: Path, options: dict[str, Any]) -> None:
        self.session = ort.InferenceSession(
            str(version_dir / "classifier.onnx"), providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.cell = int(self.session.get_inputs()[0].shape[2])
        self.labels = (version_dir / "labels.txt").read_text().split("\n")
        self.min_score = float(options.get("min_score", 0.0))
        self.max_pixels = int(options.get("max_pixels", 16_000_000))

    # -- /v1 -----------------------------------------------------------------------------

    def decode(self, body: bytes, content_type: str) -> dict[str, np.ndarray]:
        """Image bytes -> the same input v2 infer gives: {"image": uint8 [1, H, W, 3]}."""
        image = open_image(body, self.max_pixels)  # refuses empty, unknown and huge images
        return {"image": np.asarray(image.convert("RGB"))[np.newaxis]}

    def encode(self, output: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """One picture's detections: [{"label", "score", "box": [x0, y0, x1, y1]}]."""
        return [
            {
                "label": self.labels[int(c)],
                "score": round(float(s), 4),
                "box": [int(v) for v in box],
            }
            for box, s, c in zip(
                output["boxes"][0], output["scores"][0], output["classes"][0], strict=True
            )
            if c >= 0
        ]

    def example(self, seed: int) -> dict[str, np.ndarray]:
        """A 128 x 128 picture with a disc of a saturated colour in one of its cells."""
        rng = np.random.default_rng(seed)
        image = Image.new("RGB", (128, 128), (128, 128, 128))
        colour = tuple(int(v) for v in rng.permutation([230, 30, int(rng.integers(30, 90))]))
        x, y = rng.integers(0, 2, size=2) * 64 + 32
        ImageDraw.Draw(image).ellipse((x - 20, y - 20, x + 20, y + 20), fill=colour)
        return {"image": np.asarray(image)[np.newaxis]}

    # -- the model ------------------------------------------------------------------------

    def predict(self, inputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        pictures = [picture for request in inputs for picture in self._pictures(request)]
        found = [self._objects(picture) for picture in pictures]
        crops = [crop for objects in found for _, crop in objects]
        scores = self._classify(np.stack(crops)) if crops else np.zeros((0, len(self.labels)))
        detections, start = [], 0
        for objects in found:
            probabilities = scores[start : start + len(objects)]
            start += len(objects)
            detections.append(
                [
                    (box, float(p.max()), int(p.argmax()))
                    for (box, _), p in zip(objects, probabilities, strict=True)
                    if p.max() >= self.min_score
                ]
            )
        results, start = [], 0
        for request in inputs:
            count = len(request["image"])
            results.append(_as_tensors(detections[start : start + count]))
            start += count
        return results

    def _pictures(self, request: dict[str, np.ndarray]) -> np.ndarray:
        pictures = request["image"]
        if pictures.ndim != 4 or pictures.shape[-1] != 3 or pictures.dtype != np.uint8:
            raise ValueError(
                f"image must be uint8 [N, H, W, 3], not {pictures.dtype} {list(pictures.shape)}"
            )
        height, width = pictures.shape[1:3]
        if height < self.cell or width < self.cell:
            raise ValueError(
                f"the picture is {width}x{height}; the detector needs at least "
                f"{self.cell}x{self.cell} (one cell)"
            )
        return pictures

    def _objects(self, picture: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        """(box, cell pixels) of every cell that holds an object."""
        pixels = picture.astype(np.int16)
        brightest, darkest = pixels.max(axis=-1), pixels.min(axis=-1)
        saturated = (brightest > BRIGHTNESS) & (brightest - darkest > SATURATION * brightest)
        n = self.cell
        found = []
        for top in range(0, picture.shape[0] - n + 1, n):
            for left in range(0, picture.shape[1] - n + 1, n):
                mask = saturated[top : top + n, left : left + n]
                if mask.mean() < MIN_FILL:
                    continue
                # Rows and columns with one stray pixel (noise) do not widen the box.
                rows = np.flatnonzero(mask.sum(axis=1) >= 2)
                cols = np.flatnonzero(mask.sum(axis=0) >= 2)
                if not len(rows) or not len(cols):
                    continue
                box = (left + cols[0], top + rows[0], left + cols[-1] + 1, top + rows[-1] + 1)
                found.append((tuple(int(v) for v in box), picture[top : top + n, left : left + n]))
        return found  # type: ignore[return-value]

    def _classify(self, cells: np.ndarray) -> np.ndarray:
        """Softmax scores of RGB cells [K, 64, 64, 3], normalised as models/shapes says."""
        tensor = (cells.astype(np.float32) / 255.0 - 0.5) / 0.5
        logits = self.session.run(None, {self.input_name: tensor.transpose(0, 3, 1, 2)})[0]
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def _as_tensors(detections: list[list[tuple[Any, float, int]]]) -> dict[str, np.ndarray]:
    """One request's detections as v2 tensors, padded to its most detections."""
    most = max((len(d) for d in detections), default=0)
    boxes = np.zeros((len(detections), most, 4), np.float32)
    scores = np.zeros((len(detections), most), np.float32)
    classes = np.full((len(detections), most), -1, np.int64)
    for i, picture in enumerate(detections):
        for j, (box, score, index) in enumerate(picture):
            boxes[i, j], scores[i, j], classes[i, j] = box, score, index
    return {"boxes": boxes, "scores": scores, "classes": classes}
