"""Fuzz targets: the server's client-input boundary (server/requests.py), on its own and
through a live server, where every answer to whatever was sent must be below 500."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.requests import Request

from batchserve.errors import ModelNotFound
from batchserve.server.errors import HTTPError
from batchserve.server.requests import header_number, is_whole_number, version_number
from tests.live_server import DEMO_REPOSITORY, PROJECT_ROOT, LiveServer
from tests.raw_http import RawConnection, port_of

pytestmark = pytest.mark.fuzz


@given(st.text(st.characters(codec=None), max_size=8))
@example("²")
@example("١")
@example("0001")
def test_a_version_is_a_number_or_not_found(text: str) -> None:
    try:
        number = version_number("m", text)
    except ModelNotFound:
        assert not (text.isascii() and text.isdigit())
        return
    assert is_whole_number(text) and number == int(text)


@given(st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b))
@example(b"\xb2")
@example(b" 12 ")
@example(b"9" * 40)
@example(b"\x1c0")  # found by the fuzzer: str.strip() takes \x1c, HTTP whitespace is " \t"
def test_a_header_number_is_a_whole_number_or_400(raw: bytes) -> None:
    request = Request({"type": "http", "headers": [(b"content-length", raw)]})
    try:
        value = header_number(request, "content-length")
    except HTTPError as exc:
        assert exc.status == 400
        return
    assert value == int(raw.strip(b" \t"))


# --- through a live server ---------------------------------------------------------------

FIELDS = ["model", "input", "prompt", "text_input", "texts", "text", "max_tokens",
          "temperature", "top_k", "seed", "stream", "parameters", "url", "image_b64", "inputs",
          "outputs", "ready", "id", "ignore_eos"]  # fmt: skip
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**65), 2**65)
    | st.floats()
    | st.text(st.characters(codec=None), max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=5).map(
        lambda d: json.dumps(d).encode()
    ),
    values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)
ROUTES = [
    "/v1/models/{m}/predict", "/v1/models/{m}/generate", "/v1/models/{m}/embed",
    "/v2/models/{m}/generate", "/v2/models/{m}/infer", "/v2/models/{m}/versions/{v}/infer",
    "/v1/models/{m}/versions/{v}/predict", "/v2/repository/index", "/openai/v1/completions",
    "/openai/v1/embeddings",
]  # fmt: skip
segments = st.sampled_from(["shapes", "docgen", "minilm", "1", "0"]) | st.text(
    st.characters(codec=None), min_size=1, max_size=6
)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer([DEMO_REPOSITORY, PROJECT_ROOT / "models-text"]) as live:
        yield live


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment.encode("utf-8", "surrogatepass"), safe="")


@given(
    st.sampled_from(ROUTES),
    segments,
    segments,
    bodies,
    st.sampled_from(["application/json", "image/jpeg", "multipart/form-data; boundary=x", ""]),
    st.none() | st.binary(max_size=6).filter(lambda b: b"\r" not in b and b"\n" not in b),
)
@example("/v2/models/{m}/infer", "shapes", "1", b"{}", "", b"\xb2")
@example("/v1/models/{m}/versions/{v}/predict", "shapes", "\u00b2", b"{}", "image/jpeg", None)
def test_whatever_a_client_sends_the_answer_is_below_500(
    server: LiveServer, route: str, model: str, version: str, body: bytes, ctype: str,
    header_length: bytes | None,
) -> None:  # fmt: skip
    headers: dict[str, bytes | str] = {"content-type": ctype} if ctype else {}
    if header_length is not None:
        headers["inference-header-content-length"] = header_length
    path = route.format(m=_quote(model), v=_quote(version))
    with RawConnection(port_of(server.url)) as conn:
        r = conn.request("POST", path, body, headers)
    assert r.status < 500, (path, body[:200], r.body[:300])
    if r.status >= 400:
        assert r.json()["error"]
