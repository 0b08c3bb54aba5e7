from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from batchserve.codecs.labels import softmax


def test_64_concurrent_clients_all_answered_as_in_process(demo_server, samples, in_process):
    images = list(samples.items())
    expected = {label: in_process.top1(image) for label, image in images}
    expected_scores = {label: in_process.logits(image) for label, image in images}
    work = [images[i % len(images)] for i in range(64 * 4)]

    def client(chunk: list[tuple[str, bytes]]) -> list[tuple[str, dict]]:
        out = []
        with httpx.Client(base_url=demo_server.url, timeout=60) as http:
            for label, image in chunk:
                r = http.post(
                    "/v1/models/shapes/predict?top_k=1",
                    content=image,
                    headers={"content-type": "image/jpeg"},
                )
                assert r.status_code == 200, r.text
                out.append((label, r.json()))
        return out

    chunks = [work[i::64] for i in range(64)]
    with ThreadPoolExecutor(64) as pool:
        results = [item for chunk in pool.map(client, chunks) for item in chunk]
    assert len(results) == len(work)
    for label, body in results:
        top = body["predictions"][0]
        assert top["label"] == expected[label] == label
        assert abs(top["score"] - float(softmax(expected_scores[label][0]).max())) < 1e-4
        assert body["batch_size"] >= 1
