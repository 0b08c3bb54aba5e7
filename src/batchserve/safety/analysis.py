"""The checks behind `batchserve check`: may one instance serve many threads at once?

Each check runs the instance exactly as serving does (`instance.run`, so a torch
module is in eval mode under `torch.inference_mode()`) and returns a `Finding`:

- training mode: modules the artifact left in training mode (serving switched them off);
- attributes / tensors: module state that `forward` writes, from snapshots taken
  before and after two calls (a write on the first call only is lazy initialisation);
- determinism: the same input twice; if the outputs differ, again with the random
  generators reseeded, which tells randomness from state;
- race: N threads calling one instance at once with different inputs, each result
  compared with the same input run alone.

A Python model (`backend: python`) gets the attribute check on its own object (and any
torch module it holds), then determinism and the race test, fed its own `example(seed)`
inputs when the class has that method, else random tensors of its declared inputs.
Only the determinism and race checks apply to an instance that holds no Python state
(ONNX Runtime). `verdict.decide` turns the findings into the verdict.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import random
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from batchserve.machine import cpu_count
from batchserve.runtimes.base import ModelInstance
from batchserve.safety.inputs import random_inputs
from batchserve.safety.memory import MemoryEstimate, artifact_estimate
from batchserve.safety.state import diff, is_torch_module, snapshot
from batchserve.safety.verdict import Finding, SafetyReport, decide

DEFAULT_THREADS = 8
DEFAULT_ITERATIONS = 5
DEFAULT_MEMORY_BUDGET = 2 * 1000**3
#: Outputs closer than this are the same result (float sums may be reordered).
RTOL, ATOL = 1e-5, 1e-6
_INPUTS_PER_THREAD = 2
_RACE_TIMEOUT_S = 120.0

#: One request's inputs as the instance takes them: named tensors, or for a "list"
#: instance (a Python model) one value of its own.
Request = Any


def torch_module(instance: ModelInstance):  # type: ignore[no-untyped-def]
    """The instance's `torch.nn.Module`, or None for a runtime without one."""
    state = instance.python_state()
    return state if is_torch_module(state) else None


def _call(instance: ModelInstance, request: Request) -> Any:
    """One run on a copy: a model that writes its input in place must not change the
    inputs that later calls reuse, or that would pass for state. A "list" instance gets
    a batch of one and gives back its one result."""
    if instance.batch_format == "list":
        return instance.run([copy.deepcopy(request)])[0]
    return instance.run({name: array.copy() for name, array in request.items()})


def output_difference(expected: Any, got: Any) -> float | None:
    """None when two results agree; else the largest absolute difference (inf: another
    structure, shape or value that is not a float). Results are named tensors, or a
    Python model's own: nested dicts, lists, arrays, numbers and other values."""
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping) or set(expected) != set(got):
            return float("inf")
        pairs = [(expected[k], got[k]) for k in expected]
    elif isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(expected) != len(got):
            return float("inf")
        pairs = list(zip(expected, got, strict=True))
    else:
        return _leaf_difference(expected, got)
    worst: float | None = None
    for want, have in pairs:
        difference = output_difference(want, have)
        if difference is not None:
            worst = difference if worst is None else max(worst, difference)
    return worst


def _leaf_difference(want: Any, have: Any) -> float | None:
    if isinstance(want, (float, np.floating)) and isinstance(have, (float, np.floating)):
        want, have = np.asarray(want), np.asarray(have)
    if not isinstance(want, np.ndarray):
        return None if type(want) is type(have) and want == have else float("inf")
    if not isinstance(have, np.ndarray) or want.shape != have.shape or want.dtype != have.dtype:
        return float("inf")
    if want.dtype.kind not in "fc":
        return None if np.array_equal(want, have) else float("inf")
    if np.allclose(want, have, rtol=RTOL, atol=ATOL, equal_nan=True):
        return None
    delta = np.abs(want.astype(np.float64) - have.astype(np.float64))
    return float(np.nanmax(delta)) if delta.size else 0.0


_EFFECT = {
    "Dropout": "it passes values through instead of zeroing some at random",
    "BatchNorm": "it normalises with its running statistics instead of each batch's own "
    "and stops updating them",
    "InstanceNorm": "it uses its running statistics, if it tracks them",
}


def check_training_mode(instance: ModelInstance, module: object) -> Finding:
    title = "training-mode layers"
    if module is None:
        return Finding("training_mode", title, "skipped", "not a torch model: no training mode")
    found = list(getattr(instance, "training_modules_at_load", ()))
    if not found:
        return Finding(
            "training_mode", title, "pass", "no dropout or normalisation layer was left in it"
        )
    details = []
    for entry in found[:10]:
        effect = next((e for k, e in _EFFECT.items() if k in entry.kind), "it computes as in eval")
        where = f"'{entry.path}'" if entry.path else "(the root module)"
        details.append(
            f"{entry.kind} {where} was in training mode when loaded; serving switches it to "
            f"eval, so {effect}."
        )
    if len(found) > 10:
        details.append(f"... and {len(found) - 10} more modules like these.")
    if getattr(instance, "source", None) == "safetensors":
        details.append("(A module rebuilt from its class starts in training mode.)")
    many = len(found) > 1
    summary = (
        f"{len(found)} module{'s' if many else ''} left in training mode; "
        f"serving switches {'them' if many else 'it'} to eval"
    )
    return Finding("training_mode", title, "warn", summary, details, {"modules": len(found)})


def check_mutated_state(instance: ModelInstance, sample: Request) -> list[Finding]:
    """Snapshot, call, snapshot, call, snapshot: what does forward (or predict) write?"""
    owner = instance.python_state()
    torch = is_torch_module(owner)
    call = "forward" if torch else "predict"
    if owner is None:
        reason = "the runtime holds no Python state of the model's"
        return [
            Finding("attributes", "attributes written by forward", "skipped", reason),
            Finding("tensors", "buffers and parameters written by forward", "skipped", reason),
        ]
    root = "the root module" if torch else "the model object"
    before = snapshot(owner)
    _call(instance, sample)
    middle = snapshot(owner)
    _call(instance, sample)
    after = snapshot(owner)
    first = {change.key: change for change in diff(before, middle, call=call, root=root)}
    every = diff(middle, after, call=call, root=root)
    every_keys = {c.key for c in every}
    holds_tensors = any(kind != "attribute" for _, kind, _ in before)

    def finding(check: str, title: str, kinds: tuple[str, ...], clean: str) -> Finding:
        repeated = [c for c in every if c.kind in kinds]
        once = [c for k, c in first.items() if k not in every_keys and c.kind in kinds]
        details = [first[c.key].sentence(c) if c.key in first else c.sentence() for c in repeated]
        details += [
            c.sentence().removesuffix(".") + " on the first call only: lazy initialisation, "
            "which serving's warm-up runs before requests arrive (keep `warmup: true`)."
            for c in once
        ]
        names = [f"{c.module_path or '(root)'}.{c.name}" for c in repeated]
        if repeated:
            return Finding(check, title, "fail", f"{call} writes {', '.join(names)}", details)
        if once:
            return Finding(check, title, "warn", "written on the first call only", details)
        return Finding(check, title, "pass", clean)

    attributes = finding(
        "attributes",
        f"attributes written by {call}",
        ("attribute",),
        f"{call} changed no Python attribute of {'any module' if torch else 'the model'}",
    )
    if not torch and not holds_tensors:
        tensors = Finding(
            "tensors",
            f"buffers and parameters written by {call}",
            "skipped",
            "the model holds no torch module: no buffers or parameters",
        )
    else:
        tensors = finding(
            "tensors",
            f"buffers and parameters written by {call}",
            ("buffer", "parameter"),
            f"{call} wrote no buffer or parameter",
        )
    return [attributes, tensors]


@contextlib.contextmanager
def _reseeded(seed: int) -> Iterator[None]:
    """Reseed torch's, numpy's and Python's global generators; restore them afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    torch = sys.modules.get("torch")
    torch_state = torch.random.get_rng_state() if torch is not None else None
    random.seed(seed)
    np.random.seed(seed)
    if torch is not None:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if torch is not None:
            torch.random.set_rng_state(torch_state)


def check_determinism(instance: ModelInstance, sample: Request) -> Finding:
    title = "same input, same output"
    first, second = _call(instance, sample), _call(instance, sample)
    difference = output_difference(first, second)
    if difference is None:
        return Finding("determinism", title, "pass", "the same input gave the same output twice")
    with _reseeded(0):
        third = _call(instance, sample)
    with _reseeded(0):
        fourth = _call(instance, sample)
    data: dict[str, object] = {"max_difference": difference if math.isfinite(difference) else None}
    if output_difference(third, fourth) is None:
        data["random"] = True
        return Finding(
            "determinism",
            title,
            "warn",
            "outputs are random",
            [
                f"The same input gave different outputs on two calls (largest difference "
                f"{difference:.4g}) but identical ones when the random generators were "
                "reseeded first: forward draws random numbers (noise, sampling). That is "
                "not shared state, but it hides any race from the race test."
            ],
            data,
        )
    data["random"] = False
    return Finding(
        "determinism",
        title,
        "fail",
        "the same input gave different outputs",
        [
            f"The same input gave different outputs on two consecutive calls (largest "
            f"difference {difference:.4g}), even with the random generators reseeded: the "
            "output depends on the calls that came before it."
        ],
        data,
    )


def race_test(
    instance: ModelInstance,
    make_inputs: Callable[[int], Request],
    threads: int,
    iterations: int,
) -> Finding:
    """`threads` threads call one instance in lock-step, each with its own inputs;
    every result must match the same input run alone."""
    title = "race test"
    if threads < 2 or iterations < 1:
        return Finding("race", title, "skipped", "needs at least 2 threads and 1 iteration")
    inputs = [
        [make_inputs(1 + t * _INPUTS_PER_THREAD + k) for k in range(_INPUTS_PER_THREAD)]
        for t in range(threads)
    ]
    expected = [[_call(instance, x) for x in row] for row in inputs]
    start_line = threading.Barrier(threads)
    lock = threading.Lock()
    differences: list[float] = []
    errors: list[str] = []

    def caller(t: int) -> None:
        try:
            for i in range(iterations):
                start_line.wait(timeout=_RACE_TIMEOUT_S)  # all threads enter run() together
                k = i % _INPUTS_PER_THREAD
                difference = output_difference(expected[t][k], _call(instance, inputs[t][k]))
                if difference is not None:
                    with lock:
                        differences.append(difference)
        except threading.BrokenBarrierError:
            return
        except Exception as exc:  # the model's failure under concurrency is the finding
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            start_line.abort()

    workers = [threading.Thread(target=caller, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(_RACE_TIMEOUT_S * iterations)
    calls = threads * iterations
    data: dict[str, object] = {
        "threads": threads,
        "iterations": iterations,
        "mismatches": len(differences),
        "errors": len(errors),
    }
    if any(worker.is_alive() for worker in workers):
        errors.append("calls were still running after the time limit")
    if not differences and not errors:
        summary = f"{threads} threads × {iterations} calls on one instance matched sequential runs"
        return Finding("race", title, "pass", summary, data=data)
    details = []
    if differences:
        details.append(
            f"{len(differences)} of {calls} concurrent calls on one instance returned outputs "
            f"that differ from the same input run alone (largest difference "
            f"{max(differences):.4g}): concurrent calls interfere."
        )
    if errors:
        details.append(
            f"Concurrent calls failed ({errors[0]}) where the same inputs run one at a time "
            "did not."
        )
    summary = f"{len(differences)} mismatches, {len(errors)} errors in {calls} calls"
    return Finding("race", title, "fail", summary, details, data)


def _estimate_memory(
    instance: ModelInstance, module: object, sample: Request, artifact_bytes: int | None
) -> MemoryEstimate:
    if module is not None:
        from batchserve.safety.torch_memory import torch_estimate

        try:
            return torch_estimate(module, lambda: _call(instance, sample), instance.device)  # type: ignore[arg-type, attr-defined]
        except Exception:  # measuring is best effort; the fallback says it is an estimate
            pass
    if artifact_bytes is not None:
        return artifact_estimate(artifact_bytes)
    return MemoryEstimate(0, 0, "unknown: neither measured nor an artifact size to go by")


def analyse(
    instance: ModelInstance,
    input_shapes: Mapping[str, tuple[int, ...]] | None,
    *,
    threads: int = DEFAULT_THREADS,
    iterations: int = DEFAULT_ITERATIONS,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    artifact_bytes: int | None = None,
    cpus: int | None = None,
) -> SafetyReport:
    """Run every check on a freshly loaded instance and decide the verdict.

    Inputs are random tensors of `input_shapes`; with None, the model's own examples
    (`instance.example_request(seed)`, a Python model's `example`).
    The instance is called many times, and a stateful one is left changed: load a
    fresh instance to serve.
    """
    make_inputs: Callable[[int], Request]
    if input_shapes is None:
        make_inputs = instance.example_request
    else:
        make_inputs = functools.partial(random_inputs, instance.inputs, input_shapes)
    sample = make_inputs(0)
    if sample is None:
        raise ValueError("the model has no example inputs; give input shapes")
    module = torch_module(instance)
    findings = [check_training_mode(instance, module)]
    findings += check_mutated_state(instance, sample)
    memory = _estimate_memory(instance, module, sample, artifact_bytes)
    determinism = check_determinism(instance, sample)
    findings.append(determinism)
    if instance.never_shared:
        findings.append(
            Finding(
                "runtime",
                "runtime",
                "fail",
                "the runtime never shares an instance",
                [
                    f"{type(instance).__name__}: the runtime's instances keep per-call state "
                    "and are never safe to call from two threads at once, whatever a race "
                    "test shows: give each thread its own instance."
                ],
            )
        )
    elif determinism.status == "pass":
        findings.append(race_test(instance, make_inputs, threads, iterations))
    else:
        findings.append(
            Finding(
                "race",
                "race test",
                "skipped",
                "not run: outputs vary from call to call, so concurrent results cannot be "
                "compared with sequential ones",
            )
        )
    return decide(findings, memory, memory_budget, cpus or cpu_count())
