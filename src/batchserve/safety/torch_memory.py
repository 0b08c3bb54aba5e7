"""Measuring a torch module's memory (see `memory` for the method); needs torch."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from batchserve.safety.memory import MemoryEstimate


def torch_estimate(
    module: torch.nn.Module, call: Callable[[], object], device: torch.device
) -> MemoryEstimate:
    """Measure a torch module: its weights, and the activation peak of `call()` (one run)."""
    storages: dict[int, int] = {}
    for tensor in [*module.parameters(), *module.buffers()]:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    weights = sum(storages.values())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        return MemoryEstimate(weights, peak, "measured: weights' storages plus CUDA peak of a call")
    tracker = _LiveTensorPeak(skip=set(storages))
    with tracker:
        call()
    return MemoryEstimate(
        weights,
        tracker.peak,
        "measured: weights' storages plus the peak of tensors alive at once during a call",
    )


class _LiveTensorPeak(TorchDispatchMode):
    """Counts every storage an op creates until its last tensor dies; keeps the peak."""

    def __init__(self, skip: set[int]) -> None:
        super().__init__()
        self._skip = skip  # weights: ops that view them allocate nothing
        self._refs: dict[int, int] = {}
        self._live = 0
        self.peak = 0

    def _release(self, key: int, nbytes: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            self._live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if key in self._skip or nbytes == 0:
                continue
            if key not in self._refs:
                self._refs[key] = 0
                self._live += nbytes
                self.peak = max(self.peak, self._live)
            self._refs[key] += 1
            weakref.finalize(tensor, self._release, key, nbytes)
        return out
