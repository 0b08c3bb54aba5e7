"""An image classifier on `/v1/.../predict`: image bytes to its input tensor, its output
to the top-k `[{label, index, score}]`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchserve.codecs.images import ImageCodec
from batchserve.codecs.predictions import scores_from_output, top_k_labels
from batchserve.config import ClassificationConfig
from batchserve.scheduling.deferred import DeclaredTensor

#: How many classes the answer lists when the request does not say.
DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class ImageClassifier:
    """A `PredictCodec` for a model with image preprocessing in its model.yaml."""

    image: ImageCodec
    input_name: str
    output_name: str
    classification: ClassificationConfig
    labels: list[str] | None = None

    takes_images = True

    @property
    def declared_inputs(self) -> dict[str, DeclaredTensor]:
        return {self.input_name: DeclaredTensor(np.dtype(np.float32), self.image.tensor_shape)}

    def decode(self, body: bytes, content_type: str = "") -> dict[str, np.ndarray]:
        return {self.input_name: self.image.decode(body)}

    def encode(self, outputs: Mapping[str, np.ndarray], parameters: Mapping[str, Any]) -> dict:
        top_k = int(parameters.get("top_k", DEFAULT_TOP_K))
        return {"predictions": self.predictions(outputs, top_k)[0]}

    def predictions(
        self, outputs: Mapping[str, np.ndarray], top_k: int
    ) -> list[list[dict[str, object]]]:
        """The top-k labels of every row of a batch's outputs."""
        scores = scores_from_output(outputs[self.output_name], self.classification)
        return [top_k_labels(row, top_k, self.labels) for row in scores]
