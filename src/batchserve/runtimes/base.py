"""The one small interface every runtime implements.

A runtime loads an artifact into a `ModelInstance`; an instance describes its
inputs and outputs, runs one batch, and says whether one instance may be
called from several threads at once. It knows nothing of queues, HTTP or S3.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from batchserve.datatypes import v2_datatype


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, numpy dtype, shape with -1 for a dynamic dimension."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def datatype(self) -> str:
        return v2_datatype(self.dtype)

    def metadata(self) -> dict[str, object]:
        """As the v2 protocol's metadata describes a tensor."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @property
    def batched(self) -> bool:
        """Whether the first dimension is dynamic, so requests can be stacked on it."""
        return bool(self.shape) and self.shape[0] == -1


@dataclass(frozen=True)
class RuntimeOptions:
    """How to load an instance; filled from model.yaml by the caller."""

    intra_op_threads: int | None = None
    inter_op_threads: int = 1
    device: str = "cpu"
    providers: tuple[str, ...] | None = None
    allow_pickle: bool = False
    torch_module: str | None = None
    torch_kwargs: Mapping[str, object] = field(default_factory=dict)
    #: Declared in model.yaml; used where the artifact does not describe itself.
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None


class ModelInstance(ABC):
    """One loaded copy of a model."""

    #: May several threads call `run` on this one instance at the same time?
    concurrency_safe: bool = False

    @property
    @abstractmethod
    def inputs(self) -> tuple[TensorSpec, ...]: ...

    @property
    @abstractmethod
    def outputs(self) -> tuple[TensorSpec, ...]: ...

    @abstractmethod
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; every output keeps the batch dimension of the inputs."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the instance holds; the default holds nothing special."""

    def describe(self) -> dict[str, list[dict[str, object]]]:
        """Inputs and outputs as plain data (v2 metadata shape)."""
        return {
            "inputs": [t.metadata() for t in self.inputs],
            "outputs": [t.metadata() for t in self.outputs],
        }


class Runtime(ABC):
    """A framework: loads artifacts of its kind into instances."""

    name: str

    @abstractmethod
    def load(self, path: Path, options: RuntimeOptions) -> ModelInstance: ...
