"""One loaded version of one model: its description and the scheduler that runs it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from batchserve.codecs.images import ImageCodec
from batchserve.config import ModelConfig
from batchserve.runtimes.base import TensorSpec
from batchserve.scheduling.base import InferenceResult
from batchserve.scheduling.factory import BuiltScheduler


@dataclass
class LoadedModel:
    """A model version ready to serve. The server reaches the model only through this."""

    name: str
    version: int
    config: ModelConfig
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    built: BuiltScheduler
    labels: list[str] | None = None
    image_codec: ImageCodec | None = None
    resident_bytes: int = 0
    loaded_at: float = field(default_factory=time.time)
    platform: str = "onnxruntime_onnx"

    def submit(
        self, inputs: Mapping[str, np.ndarray], deadline: float | None = None
    ) -> Future[InferenceResult]:
        return self.built.scheduler.submit(inputs, deadline)

    @property
    def image_input(self) -> str:
        """The input an image goes to: the configured one, else the first."""
        prep = self.config.preprocessing
        return prep.input if prep and prep.input else self.inputs[0].name

    def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        self.built.scheduler.stop(drain=drain, timeout=timeout)
