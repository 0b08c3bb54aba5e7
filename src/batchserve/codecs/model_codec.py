"""Every request and response format one model is served with, as one object.

The loader builds a `ModelCodec` for each loaded version; the server reaches a model's
formats only through it (`LoadedModel.codec`):

- `predict`: what `/v1/models/{m}/predict` does with the model — an image classifier's
  decode + top-k (`classifier.ImageClassifier`), or a Python model's own decode/encode
  (`custom_format.CustomFormatCodec`);
- `labels`: class names, for the v2 classification extension;
- `text`: a text model's tokenizer side (generation or embeddings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from batchserve.codecs.text import TextCodec
from batchserve.scheduling.deferred import DeclaredTensor


class PredictCodec(Protocol):
    """`/v1/models/{m}/predict` for one model: the request body to the model's inputs, and
    the model's outputs to the JSON answer.

    `decode` and `encode` run on the worker thread that runs the request (a `Deferred`
    request), never on the event loop, and may run on several threads at once. What
    `decode` raises as `InvalidInput` is the client's error (4xx with the message).
    """

    #: The body is an image: the server first resolves its envelopes (raw bytes, a
    #: multipart `file`, JSON `url` or `image_b64`) and `decode` gets the image bytes.
    takes_images: bool

    #: What `decode` returns, declared for batching before it runs (None: opaque values,
    #: which only a "list" model takes).
    declared_inputs: Mapping[str, DeclaredTensor] | None

    def decode(self, body: bytes, content_type: str) -> Any:
        """The inputs one request submits to the scheduler."""
        ...

    def encode(self, outputs: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The answer's model-specific fields (e.g. `predictions`), JSON-able."""
        ...


@dataclass(frozen=True)
class ModelCodec:
    """A loaded model's formats; any part may be absent (None)."""

    predict: PredictCodec | None = None
    labels: list[str] | None = None
    text: TextCodec | None = None
