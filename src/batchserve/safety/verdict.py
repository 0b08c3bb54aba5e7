"""From findings to a verdict: `shared`, `pool(N)` or `stateful: fix the model`, with reasons.

The rules, strictest first:

- `stateful` when the same input, run twice in a row, gives different outputs that
  reseeding the random generators does not explain: the output depends on what ran
  before (the seed's `CustomLayer`). No number of instances fixes that; the model must.
- `pool(N)` when one instance cannot be shared but copies can: `forward` writes state
  that does not reach the outputs (a call counter, a scratch tensor), the race test
  saw concurrent calls disagree with sequential ones, or the outputs are random so a
  race cannot be ruled out. N = max(1, min(cores, budget // memory per instance)).
- `shared` otherwise. Modules left in training mode are reported, because serving
  switches them to eval and so serves a different function than training ran, but
  they do not stop sharing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from batchserve.safety.memory import MemoryEstimate, pool_size
from batchserve.units import format_size

Verdict = Literal["shared", "pool", "stateful"]
Status = Literal["pass", "fail", "warn", "skipped"]


@dataclass
class Finding:
    """The result of one check, with full sentences a person can act on."""

    check: str  # runtime, training_mode, attributes, tensors, determinism, race
    title: str
    status: Status
    summary: str
    details: list[str] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)


@dataclass
class SafetyReport:
    """What `batchserve check` concluded and why; `to_json` is the machine-readable form."""

    verdict: Verdict
    instances: int
    reasons: list[str]
    findings: list[Finding]
    memory: MemoryEstimate
    memory_budget: int
    cpus: int

    @property
    def verdict_line(self) -> str:
        if self.verdict == "pool":
            return f"pool({self.instances})"
        if self.verdict == "stateful":
            return "stateful: fix the model"
        return "shared"

    @property
    def concurrency_safe(self) -> bool:
        """May one instance serve many threads at once?"""
        return self.verdict == "shared"

    def finding(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)

    def to_json(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "verdict_line": self.verdict_line,
            "instances": self.instances,
            "concurrency_safe": self.concurrency_safe,
            "reasons": list(self.reasons),
            "checks": [asdict(f) for f in self.findings],
            "memory": {**self.memory.to_json(), "budget_bytes": self.memory_budget},
            "cpus": self.cpus,
        }


def _memory_reason(memory: MemoryEstimate, budget: int, cpus: int, instances: int) -> str:
    fit = budget // max(1, memory.per_instance_bytes)
    return (
        f"Each instance needs about {format_size(memory.per_instance_bytes)} "
        f"({format_size(memory.weights_bytes)} of weights and "
        f"{format_size(memory.activation_bytes)} of activations; {memory.method}); "
        f"the {format_size(budget)} budget fits {fit} and this machine has {cpus} cores, "
        f"so the pool has {instances}."
    )


def decide(
    findings: Sequence[Finding], memory: MemoryEstimate, memory_budget: int, cpus: int
) -> SafetyReport:
    """Apply the rules in this module's docstring to the findings."""
    by_check = {f.check: f for f in findings}

    def failed(check: str) -> Finding | None:
        found = by_check.get(check)
        return found if found is not None and found.status == "fail" else None

    def noted(check: str) -> Finding | None:
        found = by_check.get(check)
        return found if found is not None and found.status in ("fail", "warn") else None

    state = [f for f in (failed("attributes"), failed("tensors")) if f]
    state_sentences = [s for f in state for s in f.details]
    determinism = by_check.get("determinism")
    reasons: list[str] = []

    if failed("determinism"):
        assert determinism is not None
        reasons += state_sentences
        reasons += determinism.details
        if not state:
            reasons.append(
                "No attribute or buffer of the module changed, so the state is hidden from "
                "this check: a global, a closure, or native code."
            )
        reasons.append(
            "Outputs depend on the calls that came before, so neither sharing one instance "
            "nor a pool serves correct results: fix the model so that forward keeps no state "
            "between calls (use local variables; keep statistics out of the serving path)."
        )
        verdict: Verdict = "stateful"
        instances = 1
    elif state or failed("runtime") or failed("race") or noted("determinism"):
        reasons += state_sentences
        if (runtime := failed("runtime")) is not None:
            reasons += runtime.details
        if state:
            reasons.append(
                "The same input still gave the same output, so the written state does not "
                "reach the results, but concurrent calls would write it at the same time: "
                "give each thread its own instance."
            )
        if (race := failed("race")) is not None:
            reasons += race.details
        if not failed("determinism") and noted("determinism"):
            assert determinism is not None
            reasons += determinism.details
        verdict = "pool"
        instances = pool_size(memory.per_instance_bytes, memory_budget, cpus)
        reasons.append(_memory_reason(memory, memory_budget, cpus, instances))
    else:
        verdict = "shared"
        instances = 1
        passed = [
            f.summary
            for check in ("attributes", "tensors", "determinism", "race")
            if (f := by_check.get(check)) is not None and f.status == "pass"
        ]
        evidence = "; ".join(passed) or "no check found a problem"
        reasons.append(f"One instance may serve many threads at once: {evidence}.")

    for check in ("attributes", "tensors", "training_mode"):
        found = by_check.get(check)
        if found is not None and found.status == "warn":
            reasons += found.details
    return SafetyReport(
        verdict=verdict,
        instances=instances,
        reasons=reasons,
        findings=list(findings),
        memory=memory,
        memory_budget=memory_budget,
        cpus=cpus,
    )
