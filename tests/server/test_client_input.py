"""Whatever a client sends, the answer is a typed client error, never a 500, and the
keep-alive connection it came on keeps serving; metric labels name only real models.

Each case goes over a raw socket (tests/raw_http.py), so bytes that no ordinary client
would send reach the server as written; after the answer, a second request on the
same connection shows that the server did not drop it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import DEMO_REPOSITORY, PROJECT_ROOT, SAMPLES, LiveServer
from tests.raw_http import RawConnection, port_of

DEEP = b"[" * 100_000 + b"]" * 100_000
LONE_SURROGATE = '"\\ud800"'
SUPERSCRIPT_TWO = "%C2%B2"  # '²': str.isdigit() says yes, int() says no
IMAGE = (SAMPLES / "red_circle.jpg").read_bytes()
JPEG = {"content-type": "image/jpeg"}
JSON = {"content-type": "application/json"}


def _v2_bytes(name: str, element: str) -> bytes:
    return (
        f'{{"inputs":[{{"name":"{name}","datatype":"BYTES","shape":[1],"data":[{element}]}}]}}'
    ).encode()


#: (method, path, body, headers, status): every place a path, header, query or body is read.
CASES = [
    # Versions: Unicode digits that pass isdigit() and fail int().
    ("POST", f"/v1/models/shapes/versions/{SUPERSCRIPT_TWO}/predict", IMAGE, JPEG, 404),
    ("POST", f"/v2/models/shapes/versions/{SUPERSCRIPT_TWO}/infer", b"{}", JSON, 404),
    ("GET", f"/v2/models/shapes/versions/{SUPERSCRIPT_TWO}", b"", {}, 404),
    ("GET", f"/v2/models/shapes/versions/{SUPERSCRIPT_TWO}/ready", b"", {}, 404),
    ("POST", f"/v1/models/docgen/versions/{SUPERSCRIPT_TWO}/generate", b'{"prompt":"a"}', {}, 404),
    ("POST", f"/v2/models/docgen/versions/{SUPERSCRIPT_TWO}/generate", b"{}", {}, 404),
    ("POST", f"/v1/models/minilm/versions/{SUPERSCRIPT_TWO}/embed", b'{"text":"a"}', {}, 404),
    # Deeply nested JSON.
    ("POST", "/v1/models/shapes/predict", DEEP, JSON, 422),
    ("POST", "/v1/models/docgen/generate", DEEP, {}, 422),
    ("POST", "/v1/models/minilm/embed", DEEP, {}, 422),
    ("POST", "/v2/models/docgen/generate", DEEP, {}, 400),
    ("POST", "/v2/models/docgen/generate_stream", DEEP, {}, 400),
    ("POST", "/v2/models/shapes/infer", DEEP, {}, 400),
    ("POST", "/v2/repository/index", b"[" * 30_000 + b"]" * 30_000, {}, 400),
    ("POST", "/v2/repository/models/shapes/load", b"[" * 30_000 + b"]" * 30_000, {}, 400),
    # A lone surrogate: valid JSON, not a character.
    ("POST", "/v1/models/docgen/generate", f'{{"prompt":{LONE_SURROGATE}}}'.encode(), {}, 422),
    ("POST", "/v2/models/docgen/generate", f'{{"text_input":{LONE_SURROGATE}}}'.encode(), {}, 400),
    ("POST", "/v2/models/docgen/generate_stream", b'{"text_input":"\\ud800"}', {}, 400),
    ("POST", "/v1/models/minilm/embed", f'{{"texts":[{LONE_SURROGATE}]}}'.encode(), {}, 422),
    ("POST", "/v2/models/minilm/infer", _v2_bytes("text", LONE_SURROGATE), {}, 400),
    ("POST", "/v2/models/docgen/infer", _v2_bytes("text_input", LONE_SURROGATE), {}, 400),
    ("POST", "/v1/models/shapes/predict", f'{{"url":{LONE_SURROGATE}}}'.encode(), JSON, 422),
    # OpenAI-compatible routes (their own error shape, the same boundary).
    ("POST", "/openai/v1/completions", DEEP, {}, 400),
    ("POST", "/openai/v1/completions", b'{"model":"docgen","prompt":"\\ud800"}', {}, 400),
    ("POST", "/openai/v1/embeddings", b'{"model":"minilm","input":["\\ud800"]}', {}, 400),
    ("GET", "/openai/v1/models/%ED%A0%80", b"", {}, 404),
    # Headers and query parameters.
    ("POST", "/v2/models/shapes/infer", b"{}", {"inference-header-content-length": b"\xb2"}, 400),
    ("POST", "/v2/models/shapes/infer", b"{}", {"inference-header-content-length": b"-1"}, 400),
    ("POST", "/v1/models/shapes/predict?top_k=%C2%B2", IMAGE, JPEG, 422),
    ("POST", "/v1/models/shapes/predict?top_k=%ED%A0%80", IMAGE, JPEG, 422),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer([DEMO_REPOSITORY, PROJECT_ROOT / "models-text"]) as live:
        yield live


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    CASES,
    ids=[f"{c[0]} {c[1][:48]} {c[2][:24]!r}" for c in CASES],
)
def test_client_input_is_a_client_error_and_the_connection_stays(
    server: LiveServer, method: str, path: str, body: bytes, headers: dict, status: int
) -> None:
    with RawConnection(port_of(server.url)) as conn:
        r = conn.request(method, path, body, headers)
        assert r.status == status, r.body[:300]
        assert r.json()["error"]
        again = conn.request("GET", "/v2/health/live")
        assert again.status == 200


def test_a_good_request_after_the_bad_ones_is_answered(server: LiveServer) -> None:
    r = httpx.post(f"{server.url}/v1/models/shapes/predict", content=IMAGE, headers=JPEG)
    assert r.status_code == 200
    assert r.json()["predictions"][0]["label"] == "red circle"
    assert 'status="500"' not in httpx.get(f"{server.url}/metrics").text


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/{name}/generate",
        "/v1/models/{name}/embed",
        "/v2/models/{name}/generate",
        "/v2/models/{name}/generate_stream",
        "/v1/models/{name}/versions/7/predict",
        "/v2/models/{name}/infer",
    ],
)
def test_unknown_model_names_never_become_metric_labels(server: LiveServer, path: str) -> None:
    """A bad body to a model that does not exist is a 404 for the model, and its name
    appears nowhere in /metrics: clients cannot mint time series."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(20):
            name = f"minted-{path.split('/')[1]}-{i}"
            r = client.post(path.format(name=name), content=b'{"bad": [', headers=JSON)
            assert r.status_code == 404, r.text
            assert name in r.json()["error"]
        text = client.get("/metrics").text
    assert "minted-" not in text


def test_labels_name_the_model_and_the_version_it_resolved_to(server: LiveServer) -> None:
    """A version given as "0001" is counted as version 1, not as a series of its own."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/v1/models/shapes/versions/0001/predict", content=IMAGE, headers=JPEG)
        assert r.status_code == 200
        r = client.post("/v1/models/docgen/generate", json={"prompt": 5})
        assert r.status_code == 422
        text = client.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("batchserve_requests_total{")]
    assert not any('version="0001"' in line for line in lines), lines
    assert any('model="shapes"' in line and 'version="1"' in line for line in lines), lines
    assert any('model="docgen"' in line and 'status="422"' in line for line in lines), lines


def test_json_bodies_keep_their_meaning(server: LiveServer) -> None:
    """The strict parser still takes what clients send: escapes, pairs, non-ASCII text."""
    body = json.dumps({"texts": ["caf\u00e9 \U0001f600", "tab\there"]}).encode()
    r = httpx.post(f"{server.url}/v1/models/minilm/embed", content=body, timeout=30)
    assert r.status_code == 200, r.text
    assert len(r.json()["embeddings"]) == 2
