"""A new version appears while 32 clients keep the server busy: nothing fails, and the
answers switch from the old version's to the new one's.

Answers are stamped with the time their request was *sent*, never with the time a
client thread got round to recording them: with 32 GIL-bound client threads on a busy
machine an answer to a request sent before the swap can be recorded well after it.
What the server promises is about requests: one sent once version 2 is READY is
answered by version 2.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections import Counter

import httpx
import numpy as np

from tests import onnx_builders
from tests.live_server import LiveServer
from tests.repository.builders import (
    add_version,
    answer,
    expected,
    index,
    infer_body,
    state,
    wait_for,
    which_seed,
)

CLIENTS = 32


class Load:
    """`CLIENTS` threads posting one inference after another until stopped."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/v2/models/m/infer"
        self.failures: list[str] = []
        #: Per client: (when the request was sent, which version answered it).
        self.answers: list[list[tuple[float, int]]] = [[] for _ in range(CLIENTS)]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _client(self, i: int) -> None:
        body = infer_body()
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                sent_at = time.monotonic()
                try:
                    response = client.post(self.url, json=body)
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {response.text}")
                        continue
                    self.answers[i].append((sent_at, which_seed(answer(response), [1, 2])))
                except Exception as exc:  # a transport error is a failed request too
                    self.failures.append(repr(exc))

    def seeds_sent_since(self, moment: float) -> list[int]:
        """The versions that answered the requests sent at or after `moment`."""
        return [seed for answers in self.answers for sent, seed in answers if sent >= moment]


def test_a_new_version_swaps_in_under_load_without_a_failed_request(tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "m", 1)
    add_version(tmp_path / "staging", "m", 2)
    with LiveServer([repo], "--poll-interval", "0.5") as server, Load(server.url) as load:
        time.sleep(1.0)
        copied_at = time.monotonic()
        shutil.copytree(tmp_path / "staging" / "m" / "2", repo / "m" / "2")
        wait_for(lambda: state(server.url, "m", 2) == "READY", 30, "version 2 to serve")
        ready_at = time.monotonic()
        time.sleep(1.5)
        wait_for(lambda: state(server.url, "m", 1) == "UNAVAILABLE", 30, "v1 to drain")
        old_reason = index(server.url)[("m", "1")]["reason"]

    assert load.failures == []
    total = sum(len(a) for a in load.answers)
    assert total > 200, f"only {total} requests ran: the load was too light to test anything"
    # v1 kept serving while v2 was being loaded, and every request sent once v2 was seen
    # READY was answered by v2 (the index turns READY under the same lock as the swap).
    assert 1 in load.seeds_sent_since(copied_at)
    assert set(load.seeds_sent_since(ready_at)) == {2}
    for answers in load.answers:  # each client: v1's answers, then v2's, never back
        seeds = [seed for _, seed in answers]
        assert seeds == sorted(seeds), seeds
    assert "version 2 serves in its place" in old_reason


def test_a_broken_new_version_leaves_the_old_one_serving(tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "m", 1)
    with LiveServer([repo], "--poll-interval", "0.3") as server:
        url = f"{server.url}/v2/models/m/infer"
        (repo / "m" / "2").mkdir()
        (repo / "m" / "2" / "model.onnx").write_bytes(b"\x08\x07corrupt, not a model")
        wait_for(lambda: state(server.url, "m", 2) == "UNAVAILABLE", 30, "v2 to fail")

        entry = index(server.url)[("m", "2")]
        assert "model.onnx" in entry["reason"]
        assert state(server.url, "m", 1) == "READY"
        for _ in range(5):
            np.testing.assert_allclose(answer(httpx.post(url, json=infer_body())), expected(1))
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'batchserve_model_loads_total{model="m",outcome="failed"} 1.0' in metrics
        assert 'batchserve_model_state{model="m",state="UNAVAILABLE",version="2"} 1.0' in metrics

        add_version(repo, "m", 2)  # the fixed files replace the broken ones
        wait_for(lambda: state(server.url, "m", 2) == "READY", 30, "the fixed v2")
        np.testing.assert_allclose(
            answer(httpx.post(url, json=infer_body())), expected(2), rtol=1e-5
        )


SLOW_YAML = (
    "scheduler: {{kind: pool, instances: 1, threads: 1, max_batch_size: 1, max_queue: {}}}\n"
    "warmup: false\n"
)
#: More requests at once than one slow instance, 3 admission slots and a queue of 1 hold.
BURST = 24


def _burst(url: str) -> Counter[int]:
    """`BURST` requests sent at once, each on a connection of its own: their status codes."""
    row = ",".join(["1"] * 768)
    body = f'{{"inputs":[{{"name":"x","datatype":"FP32","shape":[1,768],"data":[{row}]}}]}}'

    async def send_all() -> list[int]:
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            headers = {"content-type": "application/json"}
            responses = await asyncio.gather(
                *(client.post(url, content=body, headers=headers) for _ in range(BURST))
            )
        return [r.status_code for r in responses]

    return Counter(asyncio.run(send_all()))


def test_a_raised_max_queue_admits_after_the_reload_the_burst_it_refused_before(tmp_path):
    onnx_builders.slow_model(tmp_path / "slow" / "1" / "model.onnx")
    model_yaml = tmp_path / "slow" / "model.yaml"
    model_yaml.write_text(SLOW_YAML.format(1))
    # One decode thread: the admission lets 2 x 1 worker x batch 1 + 1 requests in at once.
    with LiveServer([tmp_path], "--poll-interval", "0.5", "--decode-threads", "1") as server:
        url = f"{server.url}/v2/models/slow/infer"
        before = _burst(url)
        assert set(before) == {200, 503}, before  # some refused: "queue is full"

        model_yaml.write_text(SLOW_YAML.format(256))

        def reloaded() -> bool:
            config = httpx.get(f"{server.url}/v2/models/slow/config", timeout=10).json()
            return config["scheduler"]["max_queue"] == 256

        wait_for(reloaded, 30, "the changed model.yaml to be loaded")
        wait_for(lambda: state(server.url, "slow", 1) == "READY", 30, "the reload to serve")
        assert _burst(url) == Counter({200: BURST})
