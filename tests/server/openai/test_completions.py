"""OpenAI completions through the official client: the same text as batchserve's own
/v1 generate, streamed equal to whole with the same seed, stop sequences that end the
generation early, OpenAI-shaped errors naming the parameter, a client that hangs up
freeing its sequence, and the model list."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.live_server import LiveServer
from tests.server.openai.conftest import auth, metric

PROMPT = "def read_text(self):\n"
SAMPLED = {"temperature": 0.9, "top_p": 0.9, "seed": 5, "max_tokens": 80}


def own_generate(server: LiveServer, body: dict) -> dict:
    r = httpx.post(f"{server.url}/v1/models/docgen/generate", json=body, headers=auth(), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def streamed(client: openai.OpenAI, **kwargs: object) -> tuple[str, list]:
    """The text of a streamed completion and its chunks."""
    chunks = list(client.completions.create(model="docgen", stream=True, **kwargs))  # type: ignore[call-overload]
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    return text, chunks


def generated_tokens(server: LiveServer) -> float:
    return metric(server, "batchserve_generated_tokens_total", 'model="docgen"') or 0.0


def test_a_greedy_completion_is_batchservers_own_generation(
    server: LiveServer, client: openai.OpenAI
) -> None:
    answer = client.completions.create(model="docgen", prompt=PROMPT, max_tokens=40, temperature=0)
    assert answer.object == "text_completion" and answer.model == "docgen"
    assert answer.id.startswith("cmpl-")
    (choice,) = answer.choices
    own = own_generate(server, {"prompt": PROMPT, "max_tokens": 40})
    assert choice.text == own["text"] and choice.index == 0
    assert choice.finish_reason == own["finish_reason"] == "length"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == len(PROMPT.encode()) == 21  # byte tokens
    assert answer.usage.completion_tokens == 40 == len(choice.text.encode())
    assert answer.usage.total_tokens == 61


def test_a_streamed_completion_equals_the_whole_one_with_the_same_seed(
    client: openai.OpenAI,
) -> None:
    whole = client.completions.create(model="docgen", prompt=PROMPT, **SAMPLED)
    text, chunks = streamed(client, prompt=PROMPT, **SAMPLED)
    assert text == whole.choices[0].text and len(text) > 10
    assert len(chunks) > 10  # piece by piece, not one block
    assert all(c.id == chunks[0].id and c.object == "text_completion" for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    # Sampling with the seed is reproducible; a different seed samples differently.
    again = client.completions.create(model="docgen", prompt=PROMPT, **SAMPLED)
    assert again.choices[0].text == whole.choices[0].text
    other = client.completions.create(model="docgen", prompt=PROMPT, **{**SAMPLED, "seed": 6})
    assert other.choices[0].text != whole.choices[0].text


def test_stream_options_include_usage_adds_a_last_usage_chunk(client: openai.OpenAI) -> None:
    text, chunks = streamed(
        client, prompt=PROMPT, max_tokens=30, temperature=0, stream_options={"include_usage": True}
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == len(text.encode()) == 30
    assert last.usage.prompt_tokens == 21
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("stream", [False, True])
def test_a_stop_sequence_ends_the_text_before_it_and_the_generation_early(
    server: LiveServer, client: openai.OpenAI, stream: bool
) -> None:
    free = client.completions.create(model="docgen", prompt=PROMPT, max_tokens=60, temperature=0)
    full = free.choices[0].text
    stop = full[18:27]  # somewhere in the middle of the greedy text
    assert len(stop) == 9 and full.index(stop) == 18
    # Up to 1024 tokens, never ending by itself: only the stop can end it early.
    request = {"prompt": PROMPT, "max_tokens": 1024, "temperature": 0, "stop": [stop, "@@@"]}
    extra = {"extra_body": {"ignore_eos": True}}
    before = generated_tokens(server)
    if stream:
        text, chunks = streamed(client, **request, **extra)
        reason = chunks[-1].choices[0].finish_reason
    else:
        answer = client.completions.create(model="docgen", **request, **extra)
        text, reason = answer.choices[0].text, answer.choices[0].finish_reason
        assert answer.usage is not None
        # The tokens up to the one that completed the stop text (byte tokens here).
        assert answer.usage.completion_tokens == len((full[:18] + stop).encode())
    assert text == full[:18] and reason == "stop"
    # Cancelled once the stop text appeared (a few steps past it, however busy the
    # machine), not generated to the 1024 tokens and cut.
    assert generated_tokens(server) - before < 512


def test_a_plain_string_stop_works_too(client: openai.OpenAI) -> None:
    free = client.completions.create(model="docgen", prompt=PROMPT, max_tokens=40, temperature=0)
    full = free.choices[0].text
    word = full.split(" ")[1]
    answer = client.completions.create(
        model="docgen", prompt=PROMPT, max_tokens=40, temperature=0, stop=f" {word}"
    )
    assert answer.choices[0].text == full[: full.index(f" {word}")]
    assert answer.choices[0].finish_reason == "stop"


BAD_COMPLETIONS = [
    ({"n": 2}, "n"),
    ({"n": True}, "n"),  # true is not 1
    ({"best_of": 3}, "best_of"),
    ({"logprobs": 2}, "logprobs"),
    ({"echo": True}, "echo"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"presence_penalty": -1}, "presence_penalty"),
    ({"logit_bias": {"65": 10}}, "logit_bias"),
    ({"suffix": "return x"}, "suffix"),
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 5000}, "max_tokens"),  # over the model's limit of 1024
    ({"max_tokens": 3.5}, "max_tokens"),
    ({"seed": -1}, "seed"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": [""]}, "stop"),
    ({"stream": "yes"}, "stream"),
    ({"prompt": ["one", "two"]}, "prompt"),
    ({"prompt": [1, 2, 3]}, "prompt"),
    ({"prompt": "x" * 3000}, "prompt"),  # over max_prompt_tokens
    ({"model": "minilm"}, "model"),  # an embedding model
    ({"extra_body": {"repetition_penalty": 1.2}}, "repetition_penalty"),
    ({"extra_body": {"stream_options": {"include_usage": 1}}}, "stream_options.include_usage"),
]


@pytest.mark.parametrize(("change", "param"), BAD_COMPLETIONS)
def test_bad_or_unsupported_parameters_get_a_400_naming_them(
    client: openai.OpenAI, change: dict, param: str
) -> None:
    request = {"model": "docgen", "prompt": "Return the", "max_tokens": 5, **change}
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(**request)
    assert caught.value.status_code == 400
    error = caught.value.body
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert param.split(".")[0] in error["message"] or param == "prompt"
    # The server goes on serving.
    good = client.completions.create(
        model="docgen", prompt="Return the", max_tokens=3, temperature=0
    )
    assert good.choices[0].text


def test_every_error_on_these_routes_has_openais_shape(server: LiveServer) -> None:
    url = f"{server.url}/openai/v1"
    cases = [
        (httpx.post(f"{url}/completions", content=b"{not json", headers=auth()), 400),
        (httpx.post(f"{url}/completions", json={"prompt": "a"}, headers=auth()), 400),
        (httpx.post(f"{url}/completions", json={"model": "x", "prompt": "a"}, headers=auth()), 404),
        (httpx.post(f"{url}/chat/completions", json={}, headers=auth()), 404),
        (httpx.get(f"{url}/completions", headers=auth()), 405),
        (httpx.post(f"{url}/completions", json={}), 401),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert cases[1][0].json()["error"]["param"] == "model"
    assert cases[5][0].json()["error"]["code"] == "invalid_api_key"
    # batchserve's own routes keep their own shape.
    own = httpx.post(f"{server.url}/v1/models/docgen/generate", json={}, headers=auth())
    assert own.status_code == 422 and isinstance(own.json()["error"], str)


def test_a_wrong_key_is_refused_with_an_authentication_error(server: LiveServer) -> None:
    wrong = openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="wrong", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError) as caught:
        wrong.completions.create(model="docgen", prompt="a", max_tokens=2)
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"  # type: ignore[index]


def occupancy(server: LiveServer) -> float | None:
    return metric(server, "batchserve_batch_occupancy", 'model="docgen_one",version="1"')


def wait_idle(server: LiveServer, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if occupancy(server) == 0.0:
            return True
        time.sleep(0.1)
    return False


def test_a_client_that_hangs_up_mid_stream_frees_its_sequence(
    server: LiveServer, client: openai.OpenAI
) -> None:
    """docgen_one has one slot; a million-token stream holds it until the client goes."""
    assert wait_idle(server)
    stream = client.completions.create(
        model="docgen_one",
        prompt="a",
        max_tokens=1_000_000,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    for count, _ in enumerate(stream):
        if count == 5:
            break
    assert occupancy(server) == 1.0  # one of one slots busy
    stream.close()
    assert wait_idle(server), "the sequence was not freed after the client hung up"
    good = client.completions.create(model="docgen_one", prompt="b", max_tokens=5, temperature=0)
    assert good.usage is not None and good.usage.completion_tokens >= 1


def test_a_waiting_client_that_hangs_up_frees_its_sequence(server: LiveServer) -> None:
    assert wait_idle(server)
    endless = {"model": "docgen_one", "prompt": "a", "max_tokens": 1_000_000, "ignore_eos": True}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{server.url}/openai/v1/completions", json=endless, headers=auth(), timeout=1)
    assert wait_idle(server), "the sequence was not freed after the client hung up"


def test_the_model_list_has_the_text_models(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"docgen", "docgen_one", "minilm"}
    assert all(m.object == "model" and m.owned_by == "batchserve" for m in models.values())
    assert client.models.retrieve("minilm").id == "minilm"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
