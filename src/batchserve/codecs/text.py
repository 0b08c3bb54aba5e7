"""Text <-> tokens for text models: prompts and streamed output for generation, and
sentences to padded-free token tensors for embeddings.

Two tokenizers: `bytes` (UTF-8 bytes are the tokens 0..255, for byte-level models)
and a Hugging Face `tokenizer.json` read by the `tokenizers` library. Streaming
decodes token by token without ever cutting a character in two: a piece is
emitted once its bytes form whole characters, so the streamed pieces joined are
exactly the text decoded at once.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from batchserve.config import EmbedConfig, GenerateConfig, ModelConfig
from batchserve.datatypes import TensorSpec
from batchserve.errors import InvalidInput, ModelLoadError

#: Triton's names for a text model's tensors (its generate extension and vLLM backend).
TEXT_INPUT = "text_input"
TEXT_OUTPUT = "text_output"
EMBED_INPUT = "text"
EMBED_OUTPUT = "embedding"
_BYTES = np.dtype(np.object_)


class StreamDecoder(Protocol):
    """Turns one generation's tokens into text as they come, never cutting a character."""

    def push(self, token: int) -> str:
        """The text that `token` completes ("" while a character is still incomplete)."""

    def flush(self) -> str:
        """What is left at the end of the stream."""


class Tokenizer(Protocol):
    """Text to token ids and back, and a decoder for streamed output."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, tokens: Sequence[int]) -> str: ...

    def stream_decoder(self) -> StreamDecoder: ...


class ByteTokenizer:
    """UTF-8 bytes are the tokens; ids past 255 (special tokens) decode to nothing."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, tokens: Sequence[int]) -> str:
        return bytes(t for t in tokens if t < 256).decode("utf-8", errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        return _ByteStream()


class _ByteStream:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return self._decoder.decode(bytes([token])) if token < 256 else ""

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class JsonTokenizer:
    """A `tokenizers` tokenizer.json; padding off, truncation at `max_tokens`."""

    def __init__(self, path: Path, max_tokens: int | None = None) -> None:
        try:
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError as exc:
            raise ModelLoadError("text models need the tokenizers package") from exc
        if not path.is_file():
            raise ModelLoadError(f"tokenizer file {path} does not exist")
        try:
            self._tokenizer = HFTokenizer.from_file(str(path))
        except Exception as exc:
            raise ModelLoadError(f"{path}: not a tokenizers JSON file: {exc}") from exc
        self._tokenizer.no_padding()
        if max_tokens is not None:
            self._tokenizer.enable_truncation(max_length=max_tokens)
        else:
            self._tokenizer.no_truncation()

    def encode(self, text: str, special_tokens: bool = False) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=special_tokens).ids

    def encode_batch(self, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """(ids, attention mask) per text, with the model's special tokens, truncated."""
        return [(e.ids, e.attention_mask) for e in self._tokenizer.encode_batch(list(texts))]

    def decode(self, tokens: Sequence[int]) -> str:
        return self._tokenizer.decode(list(tokens))

    def stream_decoder(self) -> StreamDecoder:
        return _ReDecodingStream(self)


class _ReDecodingStream:
    """Decodes the whole output so far and emits what is new: sub-word tokenizers join
    pieces with rules (spaces, byte fallback) that a token alone cannot know."""

    def __init__(self, tokenizer: JsonTokenizer) -> None:
        self._tokenizer = tokenizer
        self._tokens: list[int] = []
        self._sent = 0

    def push(self, token: int) -> str:
        self._tokens.append(token)
        text = self._tokenizer.decode(self._tokens)
        if text.endswith("\ufffd"):  # an incomplete character: wait for its next byte
            return ""
        piece, self._sent = text[self._sent :], len(text)
        return piece

    def flush(self) -> str:
        text = self._tokenizer.decode(self._tokens)
        piece, self._sent = text[self._sent :], len(text)
        return piece


class GenerationCodec:
    """A generate model's text side: prompt to tokens, tokens to text."""

    def __init__(self, config: GenerateConfig, model_dir: Path) -> None:
        self.tokenizer: Tokenizer = (
            ByteTokenizer()
            if config.tokenizer == "bytes"
            else JsonTokenizer(model_dir / config.tokenizer)
        )
        self.eos_token = config.eos_token

    def encode_prompt(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode([t for t in tokens if t != self.eos_token])


class EmbeddingCodec:
    """An embed model's text side: each text becomes its own [1, n] tensors, unpadded,
    so that the dynamic batcher can group texts of similar length from any request."""

    def __init__(self, config: EmbedConfig, model_dir: Path) -> None:
        self.config = config
        self.tokenizer = JsonTokenizer(model_dir / config.tokenizer, config.max_tokens)

    def encode(self, texts: Sequence[str]) -> list[dict[str, np.ndarray]]:
        if not texts:
            raise InvalidInput("no text to embed")
        if len(texts) > self.config.max_texts:
            raise InvalidInput(
                f"{len(texts)} texts in one request; this model takes at most "
                f"{self.config.max_texts}"
            )
        requests = []
        for ids, mask in self.tokenizer.encode_batch(texts):
            tensors = {self.config.ids_input: np.array([ids], np.int64)}
            if self.config.mask_input is not None:
                tensors[self.config.mask_input] = np.array([mask], np.int64)
            requests.append(tensors)
        return requests


TextCodec = GenerationCodec | EmbeddingCodec


def load_text_codec(config: ModelConfig, model_dir: Path) -> TextCodec | None:
    """The text codec a model's task needs, or None for a tensor or image model."""
    if config.generate is not None:
        return GenerationCodec(config.generate, model_dir)
    if config.embed is not None:
        return EmbeddingCodec(config.embed, model_dir)
    return None


def served_specs(
    config: ModelConfig, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The tensors a model is served with: text in and out for a text model (the v2
    metadata a client reads and the inputs v2 `infer` accepts), else the artifact's."""
    if config.generate is not None:
        return (TensorSpec(TEXT_INPUT, _BYTES, (1,)),), (TensorSpec(TEXT_OUTPUT, _BYTES, (1,)),)
    if config.embed is not None:
        wanted = config.embed.output
        output = next((o for o in outputs if o.name == wanted), None) if wanted else outputs[0]
        if output is None:
            raise ModelLoadError(f"embed.output {wanted!r} is not an output of the model")
        dims = (-1, *output.shape[1:])
        return (TensorSpec(EMBED_INPUT, _BYTES, (-1,)),), (
            TensorSpec(EMBED_OUTPUT, output.dtype, dims),
        )
    return inputs, outputs


def decode_texts(values: np.ndarray, name: str) -> list[str]:
    """A v2 BYTES tensor (object array of bytes) as a list of UTF-8 strings."""
    texts = []
    for value in values.reshape(-1):
        raw = value if isinstance(value, bytes | bytearray) else str(value).encode()
        try:
            texts.append(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"input {name!r}: text must be UTF-8") from None
    return texts
