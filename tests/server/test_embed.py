"""Sentence embeddings over a real server: texts of different lengths share padded
batches and still get their unbatched vectors, paraphrases rank first, and v2 `infer`
takes a BYTES text tensor."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.live_server import LiveServer
from tests.server.text_models import text_repository

SENTENCES = [
    "A man is playing a guitar.",
    "The weather is lovely today.",
    "Continuous batching lets sequences join and leave a running batch at every step.",
    "Dogs",
    "She sold the old car and bought a bicycle to ride to work every morning.",
    "How do I reset my password?",
    "The committee postponed the vote until the financial report had been reviewed "
    "by independent auditors.",
    "Tea or coffee?",
    "An embedding maps a sentence to a point in a vector space.",
    "It rained all night long in the mountains, and the river rose above its banks.",
    "ok",
    "Python's standard library has a module for almost everything.",
]

# Each anchor's paraphrase must be its nearest among all the candidates.
PARAPHRASES = [
    ("How can I change my account password?", "What are the steps to reset my password?"),
    ("A cat is sleeping on the sofa.", "A kitten naps on the couch."),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
    ("I am learning to play the piano.", "I'm taking piano lessons."),
    ("The train to Paris was delayed.", "Our Paris-bound train left late."),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    repo = text_repository(tmp_path_factory.mktemp("text-models"))
    with LiveServer([repo]) as live:
        yield live


def embed(server: LiveServer, texts: list[str]) -> np.ndarray:
    r = httpx.post(f"{server.url}/v1/models/minilm/embed", json={"texts": texts}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dimensions"] == 384
    return np.array(body["embeddings"], np.float32)


def batch_counts(server: LiveServer) -> tuple[float, float]:
    """(runtime calls, rows) of minilm so far, from the batch size histogram."""
    text = httpx.get(f"{server.url}/metrics").text
    values = {}
    for line in text.splitlines():
        if line.startswith("batchserve_batch_size_") and 'model="minilm"' in line:
            values[line.split("{")[0]] = float(line.split()[-1])
    return values.get("batchserve_batch_size_count", 0.0), values.get(
        "batchserve_batch_size_sum", 0.0
    )


def test_batched_embeddings_equal_unbatched_ones(server: LiveServer) -> None:
    alone = np.concatenate([embed(server, [s]) for s in SENTENCES])
    calls_before, rows_before = batch_counts(server)
    # One request of all sentences, and many clients at once: texts share padded batches.
    together = embed(server, SENTENCES)
    with ThreadPoolExecutor(8) as pool:
        crowd = list(pool.map(lambda s: embed(server, [s, s[::-1]])[0], SENTENCES * 2))
    calls, rows = batch_counts(server)
    assert rows - rows_before == len(SENTENCES) * 5
    assert calls - calls_before < rows - rows_before  # some runtime calls held several texts
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.stack(crowd), np.concatenate([alone, alone]), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-5)


def test_a_paraphrase_is_the_nearest_sentence(server: LiveServer) -> None:
    anchors = [a for a, _ in PARAPHRASES]
    candidates = [p for _, p in PARAPHRASES]
    a, c = embed(server, anchors), embed(server, candidates)
    similarity = a @ c.T  # unit vectors: cosine similarity
    assert similarity.argmax(axis=1).tolist() == list(range(len(PARAPHRASES)))
    unrelated = similarity[~np.eye(len(PARAPHRASES), dtype=bool)]
    assert np.diag(similarity).min() > unrelated.max()


def test_v2_infer_takes_a_bytes_text_tensor(server: LiveServer) -> None:
    meta = httpx.get(f"{server.url}/v2/models/minilm").json()
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    texts = SENTENCES[:3]
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": texts}]}
    r = httpx.post(f"{server.url}/v2/models/minilm/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    (output,) = r.json()["outputs"]
    assert output["name"] == "embedding" and output["shape"] == [3, 384]
    got = np.array(output["data"], np.float32).reshape(3, 384)
    np.testing.assert_allclose(got, embed(server, texts), atol=1e-6)


def test_bad_embed_requests_are_refused(server: LiveServer) -> None:
    url = f"{server.url}/v1/models/minilm/embed"
    assert httpx.post(url, json={"texts": "not a list"}).status_code == 422
    assert httpx.post(url, json={"texts": []}).status_code == 422
    assert httpx.post(url, json={"texts": ["a"] * 1000}).status_code == 422
    r = httpx.post(f"{server.url}/v1/models/docgen/embed", json={"texts": ["a"]})
    assert r.status_code == 422 and "does not embed" in r.json()["error"]
    wrong = {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    assert httpx.post(f"{server.url}/v2/models/minilm/infer", json=wrong).status_code == 400
