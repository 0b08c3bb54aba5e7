"""How much memory one instance needs, and how many instances fit a budget.

One instance holds its weights and, while it runs, its activations. For a torch
module both are measured: weights as the bytes of its distinct parameter and buffer
storages, activations as the peak of tensors alive at once during one call (tracked
op by op, on CPU; from the allocator's peak on CUDA). Workspace inside a single op
is not seen, so the figure is a floor. Where nothing can be measured (ONNX Runtime,
or a failed measurement), the rule the repository uses applies: the artifact's size
for the weights and as much again for working memory.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Working memory assumed per byte of weights when activations cannot be measured.
ACTIVATION_FACTOR = 1.0


@dataclass(frozen=True)
class MemoryEstimate:
    """One instance's memory: weights plus one call's activations, and how each was found."""

    weights_bytes: int
    activation_bytes: int
    method: str

    @property
    def per_instance_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes

    def to_json(self) -> dict[str, object]:
        return {
            "weights_bytes": self.weights_bytes,
            "activation_bytes": self.activation_bytes,
            "per_instance_bytes": self.per_instance_bytes,
            "method": self.method,
        }


def pool_size(per_instance_bytes: int, budget_bytes: int, cpus: int) -> int:
    """Instances for a pool: as many as fit the budget, no more than the cores, at least one."""
    fit = budget_bytes // max(1, per_instance_bytes)
    return max(1, min(cpus, fit))


def artifact_estimate(artifact_bytes: int) -> MemoryEstimate:
    return MemoryEstimate(
        artifact_bytes,
        int(artifact_bytes * ACTIVATION_FACTOR),
        f"not measurable here: the artifact's size for the weights and {ACTIVATION_FACTOR:g}x "
        "that again for working memory",
    )
