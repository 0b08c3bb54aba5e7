"""Real ONNX instances wrapped so the tests can hold them busy and watch how they are called."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import numpy as np

from batchserve.datatypes import TensorSpec
from batchserve.runtimes.base import ModelInstance


class ObservedInstance(ModelInstance):
    """Delegates to a real instance; can be gated shut, slowed, and records every call."""

    def __init__(self, inner: ModelInstance, *, delay_s: float = 0.0, safe: bool | None = None):
        self.inner = inner
        self.delay_s = delay_s
        self.concurrency_safe = inner.concurrency_safe if safe is None else safe
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[int] = []  # rows per call, in call order
        self.seen: list[np.ndarray] = []  # first input of every call
        self.active = 0
        self.max_active = 0
        self.entered = threading.Event()
        self._lock = threading.Lock()

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.inner.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.inner.outputs

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            first = next(iter(inputs.values()))
            self.calls.append(first.shape[0])
            self.seen.append(first.copy())
        self.entered.set()
        try:
            self.gate.wait(10)
            if self.delay_s:
                time.sleep(self.delay_s)
            return self.inner.run(inputs)
        finally:
            with self._lock:
                self.active -= 1


class ObservedListInstance(ModelInstance):
    """The same for a "list" instance (a Python model): records each call's values."""

    batch_format = "list"

    def __init__(self, inner: ModelInstance) -> None:
        assert inner.batch_format == "list"
        self.inner = inner
        self.concurrency_safe = inner.concurrency_safe
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.calls: list[list[object]] = []  # the values of every call, in call order

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.inner.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.inner.outputs

    def run(self, inputs: list[object]) -> list[object]:
        self.calls.append(list(inputs))
        self.entered.set()
        self.gate.wait(10)
        return self.inner.run(inputs)
