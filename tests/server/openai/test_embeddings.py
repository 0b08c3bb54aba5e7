"""OpenAI embeddings through the official client: the same vectors as batchserve's own
/v1 embed route (floats and base64), token counts as the model's tokenizer makes them."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest
from tokenizers import Tokenizer

from tests.live_server import LiveServer
from tests.server.openai.conftest import auth
from tests.server.text_models import MINILM

TEXTS = [
    "A man is playing a guitar.",
    "hello world",
    "The committee postponed the vote until the financial report had been reviewed.",
]


def own_embeddings(server: LiveServer, texts: list[str]) -> np.ndarray:
    r = httpx.post(
        f"{server.url}/v1/models/minilm/embed", json={"texts": texts}, headers=auth(), timeout=30
    )
    assert r.status_code == 200, r.text
    return np.array(r.json()["embeddings"], np.float32)


def token_count(text: str) -> int:
    """Tokens the model reads for `text`: its tokenizer, special tokens included (the
    file pads to a fixed length; the server does not)."""
    tokenizer = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tokenizer.no_padding()
    return len(tokenizer.encode(text).ids)


def test_float_embeddings_equal_batchservers_own(server: LiveServer, client: openai.OpenAI) -> None:
    answer = client.embeddings.create(model="minilm", input=TEXTS, encoding_format="float")
    assert answer.object == "list" and answer.model == "minilm"
    assert [d.index for d in answer.data] == [0, 1, 2]
    vectors = np.array([d.embedding for d in answer.data], np.float32)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(vectors, own_embeddings(server, TEXTS), atol=1e-6)
    expected = sum(token_count(t) for t in TEXTS)
    assert answer.usage.prompt_tokens == expected == answer.usage.total_tokens
    assert expected == 8 + 4 + 16  # [CLS] ... [SEP]: not a count of words


def test_base64_embeddings_are_the_same_float32_vectors(
    server: LiveServer, client: openai.OpenAI
) -> None:
    # The client asks for base64 itself when no format is given, and decodes it.
    decoded = client.embeddings.create(model="minilm", input=TEXTS)
    vectors = np.array([d.embedding for d in decoded.data], np.float32)
    np.testing.assert_allclose(vectors, own_embeddings(server, TEXTS), atol=1e-6)
    # On the wire: little-endian float32, 384 of them.
    r = httpx.post(
        f"{server.url}/openai/v1/embeddings",
        json={"model": "minilm", "input": "hello world", "encoding_format": "base64"},
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert len(raw) == 384 * 4
    np.testing.assert_allclose(
        np.frombuffer(raw, "<f4"), own_embeddings(server, ["hello world"])[0], atol=1e-6
    )


def test_one_string_is_one_embedding(client: openai.OpenAI) -> None:
    answer = client.embeddings.create(model="minilm", input="hello world", encoding_format="float")
    assert len(answer.data) == 1 and len(answer.data[0].embedding) == 384
    assert answer.usage.prompt_tokens == token_count("hello world")
    assert client.embeddings.create(model="minilm", input="hi", dimensions=384).data


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"model": "minilm", "input": [[101, 7592, 102]]}, "input"),  # token ids
        ({"model": "minilm", "input": []}, "input"),
        ({"model": "minilm", "input": "hi", "dimensions": 128}, "dimensions"),
        ({"model": "minilm", "input": "hi", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "docgen", "input": "hi"}, "model"),  # a generation model
        ({"model": "minilm", "input": "hi", "extra_body": {"truncate": True}}, "truncate"),
    ],
)
def test_bad_parameters_get_a_400_naming_them(
    client: openai.OpenAI, kwargs: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(**kwargs)
    error = caught.value.body
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"]
    assert client.embeddings.create(model="minilm", input="still serving").data


def test_an_unknown_model_is_a_404_in_openais_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="no-such-model", input="hi")
    assert caught.value.body["code"] == "model_not_found"
    assert caught.value.body["param"] == "model"
