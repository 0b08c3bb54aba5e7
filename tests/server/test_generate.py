"""Text generation over a real server: /v1 generate (whole and SSE-streamed), Triton's
v2 generate and generate_stream, metrics, and a client that goes away freeing its slot."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.live_server import LiveServer
from tests.server.text_models import text_repository


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    repo = text_repository(tmp_path_factory.mktemp("text-models"))
    with LiveServer([repo]) as live:
        yield live


def events(response: httpx.Response) -> list[dict | str]:
    """The `data:` payloads of an SSE response, as they arrive."""
    found: list[dict | str] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            payload = line[len("data: ") :]
            found.append(payload if payload == "[DONE]" else json.loads(payload))
    return found


def generate(server: LiveServer, body: dict, model: str = "docgen") -> dict:
    r = httpx.post(f"{server.url}/v1/models/{model}/generate", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_generate_returns_the_whole_text_with_usage_and_timings(server: LiveServer) -> None:
    body = generate(server, {"prompt": "def read_text(self):\n", "max_tokens": 30})
    assert body["model"] == "docgen" and body["version"] == 1
    assert body["finish_reason"] in ("stop", "length")
    assert 0 < len(body["text"].encode()) <= 30
    assert body["usage"] == {"prompt_tokens": 21, "completion_tokens": len(body["text"].encode())}
    assert 0 < body["timings_ms"]["first_token"] <= body["timings_ms"]["total"]


def test_streamed_tokens_arrive_one_by_one_and_join_into_the_whole_text(
    server: LiveServer,
) -> None:
    prompt = {"prompt": "class Path:\n", "max_tokens": 60}
    whole = generate(server, prompt)["text"]
    with httpx.stream(
        "POST",
        f"{server.url}/v1/models/docgen/generate",
        json={**prompt, "stream": True},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        got = events(r)
    assert got[-1] == "[DONE]"
    summary = got[-2]
    pieces = got[:-2]
    assert isinstance(summary, dict) and summary["finish_reason"] in ("stop", "length")
    assert summary["usage"]["completion_tokens"] == len(pieces)  # one event per token (ASCII)
    assert all(isinstance(p, dict) and len(p["text"]) == 1 for p in pieces)
    assert "".join(p["text"] for p in pieces) == whole  # type: ignore[index]


def test_v2_generate_and_generate_stream_speak_tritons_format(server: LiveServer) -> None:
    body = {"text_input": "Return the", "parameters": {"max_tokens": 25}}
    r = httpx.post(f"{server.url}/v2/models/docgen/generate", json=body, timeout=30)
    assert r.status_code == 200, r.text
    whole = r.json()
    assert set(whole) == {"model_name", "model_version", "text_output"}
    assert whole["model_name"] == "docgen" and whole["model_version"] == "1"
    with httpx.stream(
        "POST", f"{server.url}/v2/models/docgen/generate_stream", json=body, timeout=30
    ) as r:
        assert r.status_code == 200
        got = events(r)
    assert all(isinstance(e, dict) and e["model_name"] == "docgen" for e in got)
    assert "".join(e["text_output"] for e in got) == whole["text_output"]  # type: ignore[index]
    # Sampling parameters at the top level, as Triton also accepts; v2 infer with text_input.
    seeded = {"text_input": "The ", "max_tokens": 20, "temperature": 0.9, "top_k": 10, "seed": 3}
    a = httpx.post(f"{server.url}/v2/models/docgen/generate", json=seeded, timeout=30).json()
    b = httpx.post(f"{server.url}/v2/models/docgen/generate", json=seeded, timeout=30).json()
    assert a["text_output"] == b["text_output"]
    text_input = {"name": "text_input", "datatype": "BYTES", "shape": [1], "data": ["Return the"]}
    infer = {"inputs": [text_input], "parameters": {"max_tokens": 25}}
    r = httpx.post(f"{server.url}/v2/models/docgen/infer", json=infer, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [whole["text_output"]]


def test_concurrent_greedy_requests_get_what_each_gets_alone(server: LiveServer) -> None:
    cases = [({"prompt": p, "max_tokens": m}) for p, m in zip(
        ["def f(x):\n", "class A:\n", "Return", "module os:\n", "The ", "x"] * 3,
        [5, 80, 12, 40, 100, 3, 60, 7, 33, 90, 20, 2, 70, 15, 50, 9, 120, 25],
        strict=False,
    )]  # fmt: skip
    alone = [generate(server, c)["text"] for c in cases]
    with ThreadPoolExecutor(len(cases)) as pool:
        together = list(pool.map(lambda c: generate(server, c)["text"], cases))
    assert together == alone


def test_bad_requests_are_refused_with_the_reason(server: LiveServer) -> None:
    url = f"{server.url}/v1/models/docgen/generate"
    assert httpx.post(url, json={"max_tokens": 3}).status_code == 422
    assert httpx.post(url, json={"prompt": "a", "max_tokens": 0}).status_code == 422
    assert httpx.post(url, json={"prompt": "a", "max_tokens": 5000}).status_code == 422
    assert httpx.post(url, json={"prompt": "a", "temperature": "hot"}).status_code == 422
    assert httpx.post(url, json={"prompt": "a", "stream": "yes"}).status_code == 422
    r = httpx.post(f"{server.url}/v1/models/minilm/generate", json={"prompt": "a"})
    assert r.status_code == 422 and "does not generate" in r.json()["error"]
    r = httpx.post(f"{server.url}/v2/models/docgen/generate", json={"parameters": {}})
    assert r.status_code == 400


def test_a_streaming_client_that_disconnects_frees_its_slot(server: LiveServer) -> None:
    """docgen_one has one slot: a stream of a million tokens holds it until the client
    goes away; then the next request runs at once."""
    endless = {"prompt": "a", "max_tokens": 1_000_000, "ignore_eos": True, "stream": True}
    with httpx.stream(
        "POST", f"{server.url}/v1/models/docgen_one/generate", json=endless, timeout=30
    ) as r:
        lines = r.iter_lines()
        first = [next(lines) for _ in range(6)]
        assert sum(line.startswith("data: ") for line in first) >= 3
    # The connection is closed: the generation is cancelled at its next step.
    started = time.monotonic()
    body = generate(server, {"prompt": "b", "max_tokens": 5}, model="docgen_one")
    assert body["usage"]["completion_tokens"] >= 1
    assert time.monotonic() - started < 10


def test_a_waiting_client_that_disconnects_frees_its_slot(server: LiveServer) -> None:
    endless = {"prompt": "a", "max_tokens": 1_000_000, "ignore_eos": True}
    gone = threading.Event()

    def impatient() -> None:
        try:
            httpx.post(f"{server.url}/v1/models/docgen_one/generate", json=endless, timeout=1.0)
        except httpx.TimeoutException:
            gone.set()

    thread = threading.Thread(target=impatient)
    thread.start()
    thread.join(10)
    assert gone.is_set()
    started = time.monotonic()
    generate(server, {"prompt": "b", "max_tokens": 5}, model="docgen_one")
    assert time.monotonic() - started < 10


def test_metrics_count_tokens_and_time_to_first_token(server: LiveServer) -> None:
    generate(server, {"prompt": "x", "max_tokens": 10, "ignore_eos": True})
    text = httpx.get(f"{server.url}/metrics").text
    tokens = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('batchserve_generated_tokens_total{model="docgen"}')
    ]
    assert tokens and tokens[0] >= 10
    assert 'batchserve_time_to_first_token_seconds_count{model="docgen"}' in text
    assert 'batchserve_time_per_output_token_seconds_count{model="docgen"}' in text
    assert 'batchserve_batch_occupancy{model="docgen",version="1"}' in text
    assert 'batchserve_batch_size_count{model="docgen",version="1"}' in text
