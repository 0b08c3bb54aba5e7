from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.live_server import DEMO_REPOSITORY, LiveServer


def _predict(url: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/shapes/predict", timeout=30, **kwargs)


def test_raw_upload_gives_the_right_label(demo_server, samples):
    for label, image in samples.items():
        r = _predict(demo_server.url, content=image, headers={"content-type": "image/jpeg"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "shapes" and body["version"] == 1
        assert body["predictions"][0]["label"] == label
        assert len(body["predictions"]) == 5
        scores = [p["score"] for p in body["predictions"]]
        assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
        assert set(body["timings_ms"]) >= {"decode", "queue", "inference", "total"}


def test_multipart_upload(demo_server, samples):
    label, image = next(iter(samples.items()))
    r = _predict(demo_server.url, files={"file": ("x.jpg", image, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["label"] == label


def test_base64_json_with_top_k(demo_server, samples):
    label, image = list(samples.items())[1]
    r = _predict(demo_server.url, json={"image_b64": base64.b64encode(image).decode(), "top_k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"][0]["label"] == label
    assert len(body["predictions"]) == 2


def test_top_k_query_and_version_route(demo_server, samples):
    label, image = next(iter(samples.items()))
    r = httpx.post(
        f"{demo_server.url}/v1/models/shapes/versions/1/predict?top_k=1",
        content=image,
        headers={"content-type": "image/jpeg"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert [p["label"] for p in r.json()["predictions"]] == [label]


def test_unknown_model_and_version_are_404_with_what_exists(demo_server, samples):
    image = next(iter(samples.values()))
    r = httpx.post(
        f"{demo_server.url}/v1/models/nope/predict",
        content=image,
        headers={"content-type": "image/jpeg"},
    )
    assert r.status_code == 404
    assert "shapes" in r.json()["available"]
    r = httpx.post(
        f"{demo_server.url}/v1/models/shapes/versions/7/predict",
        content=image,
        headers={"content-type": "image/jpeg"},
    )
    assert r.status_code == 404
    assert r.json()["available"] == ["1"]


@pytest.fixture(scope="module")
def image_host(samples) -> Iterator[str]:
    """A loopback HTTP server serving one sample image at /img.jpg."""
    image = next(iter(samples.values()))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/img.jpg"
    finally:
        server.shutdown()
        server.server_close()


def test_url_on_loopback_is_refused_by_default(demo_server, image_host):
    r = _predict(demo_server.url, json={"url": image_host})
    assert r.status_code == 422
    assert "loopback" in r.json()["error"]


def test_url_on_loopback_is_fetched_when_the_operator_allows_it(image_host, samples):
    label = next(iter(samples))
    with LiveServer([DEMO_REPOSITORY], "--url-allow-loopback") as server:
        r = _predict(server.url, json={"url": image_host})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["label"] == label
        r = _predict(server.url, json={"url": "file:///etc/passwd"})
        assert r.status_code == 422


def test_models_are_listed_with_their_state(demo_server):
    models = httpx.get(f"{demo_server.url}/v1/models").json()["models"]
    assert {"name": "shapes", "version": 1, "state": "READY", "reason": ""} in models
