"""ContinuousBatcher on the shipped docgen GRU: sequences join and leave at every step,
greedy output is what the request gets alone, and queue bound, deadlines and
cancellation behave as in the dynamic batcher."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from batchserve.errors import DeadlineExceeded, InvalidInput, QueueFull, SchedulerStopped
from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.runtimes.step_model import StepModel
from batchserve.scheduling.continuous_batcher import ContinuousBatcher, GenerationResult
from batchserve.scheduling.sampling import SamplingParams
from tests.scheduling.instances import ObservedInstance

ROOT = Path(__file__).resolve().parents[2]
DOCGEN = ROOT / "models" / "docgen" / "1" / "model.onnx"
EOS = 256
PROMPTS = [
    b"def read_text(self, encoding=None):\n",
    b"class Path:\n",
    b"Return the",
    b"def join(a, *p):\nJoin two or more pathname components",
    b"module json:\n",
    b"x",
    b"def sleep(secs):\n",
    b"The ",
]


@pytest.fixture(scope="module")
def instance() -> ObservedInstance:
    return ObservedInstance(load_instance("onnx", DOCGEN, RuntimeOptions(intra_op_threads=1)))


def step_model(instance: ObservedInstance) -> StepModel:
    return StepModel(instance, eos_token=EOS, bos_token=EOS)


@pytest.fixture
def make_batcher(instance: ObservedInstance) -> Iterator:
    made: list[ContinuousBatcher] = []

    def make(**kwargs: object) -> ContinuousBatcher:
        instance.gate.set()
        instance.calls.clear()
        batcher = ContinuousBatcher(step_model(instance), **kwargs)  # type: ignore[arg-type]
        batcher.start()
        made.append(batcher)
        return batcher

    yield make
    instance.gate.set()
    for batcher in made:
        batcher.stop(drain=False, timeout=5)


def alone(model: StepModel, prompt: bytes, max_tokens: int) -> list[int]:
    """Greedy generation for one sequence, straight on the step model: the reference."""
    sequence = model.init_state(list(prompt))
    while True:
        token = int(np.argmax(model.step([sequence])[0]))
        model.append(sequence, token)
        if model.finished(sequence, token, max_tokens):
            return sequence.generated


def test_greedy_output_under_32_concurrent_mixed_requests_equals_each_run_alone(
    make_batcher, instance: ObservedInstance
) -> None:
    rng = np.random.default_rng(7)
    cases = [
        (PROMPTS[i % len(PROMPTS)] + bytes(rng.integers(97, 123, size=i % 5)), int(m))
        for i, m in enumerate(rng.integers(4, 120, size=32))
    ]
    model = step_model(instance)
    expected = [alone(model, prompt, m) for prompt, m in cases]
    assert len({len(e) for e in expected}) > 8  # lengths really are mixed

    batcher = make_batcher(max_batch_size=32)
    handles = []
    for i, (prompt, m) in enumerate(cases):
        handles.append(batcher.generate(list(prompt), SamplingParams(max_tokens=m)))
        if i % 8 == 7:
            time.sleep(0.01)  # later waves join a batch that is already running
    results = [h.result(timeout=60) for h in handles]
    assert [r.tokens for r in results] == expected
    assert max(instance.calls) > 8  # they did share steps


def test_a_short_request_finishes_before_a_long_one_that_started_earlier(make_batcher) -> None:
    batcher = make_batcher(max_batch_size=4)
    started = threading.Event()
    long = batcher.generate(
        list(b"class "),
        SamplingParams(max_tokens=400, ignore_eos=True),
        on_token=lambda _: started.set(),
    )
    assert started.wait(10)
    short = batcher.generate(list(b"def f"), SamplingParams(max_tokens=5, ignore_eos=True))
    short_result = short.result(timeout=30)
    assert not long.future.done()
    assert len(short_result.tokens) == 5
    assert len(long.result(timeout=30).tokens) == 400


def test_a_freed_slot_is_taken_at_once_by_the_next_request(
    make_batcher, instance: ObservedInstance
) -> None:
    batcher = make_batcher(max_batch_size=2)
    a = batcher.generate(list(b"a"), SamplingParams(max_tokens=300, ignore_eos=True))
    b = batcher.generate(list(b"b"), SamplingParams(max_tokens=5, ignore_eos=True))
    c = batcher.generate(list(b"c"), SamplingParams(max_tokens=5, ignore_eos=True))
    rc, ra = c.result(timeout=30), a.result(timeout=30)
    b.result(timeout=30)
    assert max(instance.calls) <= 2
    # c waited only for b's 5 tokens, not for a's 300: it started and ended while a ran.
    assert rc.total_s < ra.total_s
    assert rc.queue_s < ra.total_s / 4


def test_request_level_policy_admits_only_into_an_empty_batch(make_batcher) -> None:
    batcher = make_batcher(max_batch_size=4, policy="request")
    started = threading.Event()
    a = batcher.generate(
        list(b"a"),
        SamplingParams(max_tokens=200, ignore_eos=True),
        on_token=lambda _: started.set(),
    )
    a_done: list[float] = []
    a.future.add_done_callback(lambda _: a_done.append(time.monotonic()))
    assert started.wait(10)
    b_first: list[float] = []
    b = batcher.generate(
        list(b"b"),
        SamplingParams(max_tokens=2, ignore_eos=True),
        on_token=lambda _: b_first.append(time.monotonic()),
    )
    a.result(timeout=30)
    b.result(timeout=30)
    # A slot was free all along, yet b's first token came after a's last.
    assert b_first[0] > a_done[0]


def test_a_full_queue_refuses_at_once(make_batcher, instance: ObservedInstance) -> None:
    batcher = make_batcher(max_batch_size=1, max_queue=2)
    instance.gate.clear()  # the first step blocks: the loop holds one, the queue the rest
    instance.entered.clear()
    first = batcher.generate(list(b"a"), SamplingParams(max_tokens=2))
    assert instance.entered.wait(5)
    queued = [batcher.generate(list(b"b"), SamplingParams(max_tokens=2)) for _ in range(2)]
    with pytest.raises(QueueFull):
        batcher.generate(list(b"c"), SamplingParams(max_tokens=2))
    instance.gate.set()
    for handle in [first, *queued]:
        assert handle.result(timeout=30).tokens


def test_a_request_past_its_deadline_in_the_queue_never_runs(
    make_batcher, instance: ObservedInstance
) -> None:
    batcher = make_batcher(max_batch_size=1)
    instance.gate.clear()
    instance.entered.clear()
    first = batcher.generate(list(b"a"), SamplingParams(max_tokens=1))
    assert instance.entered.wait(5)
    late = batcher.generate(
        list(b"b"), SamplingParams(max_tokens=5), deadline=time.monotonic() + 0.05
    )
    time.sleep(0.1)
    calls = len(instance.calls)
    instance.gate.set()
    first.result(timeout=10)
    with pytest.raises(DeadlineExceeded):
        late.result(timeout=10)
    assert len(instance.calls) == calls  # the late one was never prefilled


def test_a_running_request_past_its_deadline_stops_and_frees_its_slot(make_batcher) -> None:
    batcher = make_batcher(max_batch_size=1)
    slow = batcher.generate(
        list(b"a"),
        SamplingParams(max_tokens=100_000, ignore_eos=True),
        deadline=time.monotonic() + 0.3,
    )
    with pytest.raises(DeadlineExceeded):
        slow.result(timeout=10)
    assert batcher.generate(list(b"b"), SamplingParams(max_tokens=3)).result(timeout=10)


def test_cancelling_a_running_request_frees_its_slot_at_the_next_step(make_batcher) -> None:
    batcher = make_batcher(max_batch_size=1)
    started = threading.Event()
    a = batcher.generate(
        list(b"a"),
        SamplingParams(max_tokens=100_000, ignore_eos=True),
        on_token=lambda _: started.set(),
    )
    b = batcher.generate(list(b"b"), SamplingParams(max_tokens=3, ignore_eos=True))
    assert started.wait(10)
    a.cancel()
    cancelled = a.result(timeout=10)
    assert cancelled.finish_reason == "cancelled"
    assert len(cancelled.tokens) < 100_000
    assert len(b.result(timeout=10).tokens) == 3


def test_cancelling_a_queued_request_drops_it(make_batcher, instance: ObservedInstance) -> None:
    batcher = make_batcher(max_batch_size=1)
    instance.gate.clear()
    instance.entered.clear()
    first = batcher.generate(list(b"a"), SamplingParams(max_tokens=1))
    assert instance.entered.wait(5)
    queued = batcher.generate(list(b"b"), SamplingParams(max_tokens=1))
    queued.cancel()
    instance.gate.set()
    first.result(timeout=10)
    assert queued.future.cancelled()


def test_a_listener_that_fails_cancels_only_its_request(make_batcher) -> None:
    batcher = make_batcher(max_batch_size=4)

    def gone(_: int) -> None:
        raise RuntimeError("Event loop is closed")

    broken = batcher.generate(list(b"a"), SamplingParams(max_tokens=50), on_token=gone)
    fine = batcher.generate(list(b"a"), SamplingParams(max_tokens=50))
    assert broken.result(timeout=10).finish_reason == "cancelled"
    assert fine.result(timeout=10).finish_reason in ("stop", "length")


def test_tokens_stream_in_order_and_match_the_result(make_batcher) -> None:
    batcher = make_batcher(max_batch_size=4)
    seen: list[int] = []
    result: GenerationResult = batcher.generate(
        list(b"def "), SamplingParams(max_tokens=40), on_token=seen.append
    ).result(timeout=10)
    assert seen == result.tokens
    assert EOS not in seen
    assert result.first_token_s is not None and result.first_token_s <= result.total_s


def test_seeded_sampling_is_reproducible_whatever_shares_the_batch(make_batcher) -> None:
    batcher = make_batcher(max_batch_size=8)
    params = SamplingParams(max_tokens=60, temperature=0.9, top_k=20, seed=1234)
    solo = batcher.generate(list(b"The "), params).result(timeout=10).tokens
    crowd = [batcher.generate(list(p), SamplingParams(max_tokens=80)) for p in PROMPTS[:6]]
    again = batcher.generate(list(b"The "), params).result(timeout=10).tokens
    other = batcher.generate(
        list(b"The "), SamplingParams(max_tokens=60, temperature=0.9, top_k=20, seed=99)
    ).result(timeout=10)
    for h in crowd:
        h.result(timeout=10)
    assert again == solo
    assert other.tokens != solo
    top1 = SamplingParams(max_tokens=30, temperature=1.5, top_k=1, seed=5)
    greedy = SamplingParams(max_tokens=30)
    assert (
        batcher.generate(list(b"The "), top1).result(timeout=10).tokens
        == batcher.generate(list(b"The "), greedy).result(timeout=10).tokens
    )


def test_bad_prompts_and_stopped_batchers_refuse(make_batcher) -> None:
    batcher = make_batcher(max_batch_size=2, max_prompt_tokens=8)
    with pytest.raises(InvalidInput):
        batcher.generate([1] * 9, SamplingParams(max_tokens=1))
    with pytest.raises(InvalidInput):
        batcher.generate([300], SamplingParams(max_tokens=1))
    with pytest.raises(InvalidInput):
        SamplingParams(max_tokens=0)
    batcher.stop(drain=True, timeout=5)
    with pytest.raises(SchedulerStopped):
        batcher.generate([1], SamplingParams(max_tokens=1))


def test_stop_with_drain_finishes_running_and_queued_generations(make_batcher) -> None:
    batcher = make_batcher(max_batch_size=1)
    handles = [
        batcher.generate(list(b"ab"), SamplingParams(max_tokens=20, ignore_eos=True))
        for _ in range(3)
    ]
    batcher.stop(drain=True, timeout=10)
    assert [len(h.result(timeout=1).tokens) for h in handles] == [20, 20, 20]


def test_the_tensor_contract_generates_greedily(make_batcher, instance) -> None:
    batcher = make_batcher(max_batch_size=2, default_max_tokens=10)
    prompt = np.array([list(b"def ")], np.int64)
    result = batcher.submit({"tokens": prompt}).result(timeout=10)
    assert result.outputs["tokens"][0].tolist() == alone(step_model(instance), b"def ", 10)
    stats = batcher.stats()
    assert stats.max_sequences == 2 and stats.sequences == 0
