"""OpenAI request bodies, validated: the parameters batchserve serves, the ones it takes
only at the value that changes nothing, and for anything else a 400 that names the
parameter (`InvalidParameter`), never silence.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from batchserve.errors import InvalidInput, InvalidParameter

#: OpenAI's limit on stop sequences.
MAX_STOP_SEQUENCES = 4


class _Body(BaseModel):
    # Strict: "1" is not a number and 1 is not true; unknown parameters are refused.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StreamOptions(_Body):
    """`stream_options`: a last chunk with the usage when `include_usage`."""

    include_usage: bool = False


class CompletionBody(_Body):
    """`POST /openai/v1/completions`. `top_k` and `ignore_eos` are batchserve's own
    sampling parameters (vLLM's OpenAI server takes them too)."""

    model: str
    prompt: str
    max_tokens: int | None = Field(None, ge=1)
    # OpenAI's defaults: sampled at temperature 1 unless the request says otherwise.
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, ge=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    top_k: int | None = Field(None, ge=0)
    ignore_eos: bool = False

    @field_validator("prompt", mode="before")
    @classmethod
    def _one_prompt(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            return value[0]
        if isinstance(value, str):
            return value
        raise ValueError(
            "prompt must be a string (or a list of one string): batched prompts and "
            "token arrays are not supported"
        )

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_sequences(cls, value: Any) -> Any:
        if value is None:
            return ()
        stops = [value] if isinstance(value, str) else value
        if (
            not isinstance(stops, list)
            or not 1 <= len(stops) <= MAX_STOP_SEQUENCES
            or not all(isinstance(s, str) and s for s in stops)
        ):
            raise ValueError(
                f"stop must be a string or a list of 1 to {MAX_STOP_SEQUENCES} non-empty strings"
            )
        return tuple(stops)

    def sampling(self) -> dict[str, Any]:
        """The fields `start_generation` takes (the model's defaults for those not given)."""
        fields = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
            "ignore_eos": self.ignore_eos,
        }
        return {k: v for k, v in fields.items() if v is not None}

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


#: Completion parameters batchserve takes only at their neutral value (or null), with
#: why anything else is refused.
COMPLETION_NEUTRAL: dict[str, tuple[tuple[object, ...], str]] = {
    "n": ((1,), "one choice per request; send n requests"),
    "best_of": ((1,), "one candidate per request"),
    "echo": ((False,), "the prompt is not echoed back"),
    "logprobs": ((), "log probabilities are not returned"),
    "frequency_penalty": ((0, 0.0), "no frequency penalty"),
    "presence_penalty": ((0, 0.0), "no presence penalty"),
    "logit_bias": (({},), "no logit bias"),
    "suffix": (("",), "no text insertion (suffix)"),
}


class EmbeddingsBody(_Body):
    """`POST /openai/v1/embeddings`."""

    model: str
    input: tuple[str, ...]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        texts = [value] if isinstance(value, str) else value
        if isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts):
            return tuple(texts)
        if isinstance(texts, list) and texts and all(isinstance(t, int | list) for t in texts):
            raise ValueError("input as token ids is not supported: send the text")
        raise ValueError("input must be a string or a non-empty list of strings")


Body = TypeVar("Body", bound=_Body)


def parse_body(
    body_type: type[Body],
    doc: Mapping[str, Any],
    neutral: Mapping[str, tuple[tuple[object, ...], str]] | None = None,
) -> Body:
    """`doc` as `body_type`; `InvalidParameter` naming the first parameter that is wrong."""
    fields = dict(doc)
    for name, (accepted, why) in (neutral or {}).items():
        value = fields.pop(name, None)
        if not _is_one_of(value, accepted):
            raise InvalidParameter(
                name, f"{name}={value!r} is not supported: {why}", code="unsupported_parameter"
            )
    try:
        return body_type.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(exc.errors(include_url=False)[0]) from None


@contextmanager
def blame(param: str) -> Iterator[None]:
    """A plain `InvalidInput` raised inside is about `param` (the text that was sent):
    re-raised as an `InvalidParameter` naming it."""
    try:
        yield
    except InvalidInput as exc:
        if type(exc) is not InvalidInput:  # already named, or its own status (413, 415)
            raise
        raise InvalidParameter(param, str(exc)) from exc


def _is_one_of(value: object, accepted: tuple[object, ...]) -> bool:
    """None, or equal to one of `accepted` and of its type (True is not 1)."""
    return value is None or any(type(value) is type(a) and value == a for a in accepted)


def _invalid(error: ErrorDetails) -> InvalidParameter:
    param = ".".join(str(part) for part in error["loc"]) or "body"
    kind = error["type"]
    if kind == "extra_forbidden":
        return InvalidParameter(
            param, f"unrecognized request argument: {param}", code="unknown_parameter"
        )
    if kind == "missing":
        return InvalidParameter(param, f"{param} is required", code="missing_required_parameter")
    if kind == "value_error":
        return InvalidParameter(param, str(error.get("ctx", {}).get("error", error["msg"])))
    message = error["msg"]
    return InvalidParameter(param, f"{param}: {message[0].lower()}{message[1:]}")
