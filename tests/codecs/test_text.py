"""Text codecs: streamed decoding never cuts a character in two, and the pieces join
into the text decoded at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batchserve.codecs.text import ByteTokenizer, EmbeddingCodec, JsonTokenizer, decode_texts
from batchserve.config import EmbedConfig
from batchserve.errors import InvalidInput

MINILM = Path(__file__).resolve().parents[2] / "models-text" / "minilm"


def stream(tokenizer, tokens: list[int]) -> list[str]:
    decoder = tokenizer.stream_decoder()
    pieces = [decoder.push(t) for t in tokens]
    return [*pieces, decoder.flush()]


def test_byte_stream_holds_a_character_until_its_last_byte() -> None:
    tokenizer = ByteTokenizer()
    text = "naïve — 日本 ✓"
    tokens = tokenizer.encode(text)
    pieces = stream(tokenizer, tokens)
    assert "".join(pieces) == text == tokenizer.decode(tokens)
    assert all("\ufffd" not in p for p in pieces)
    assert pieces[tokens.index(0xC3)] == ""  # the first byte of "ï" alone shows nothing


def test_byte_stream_of_invalid_utf8_matches_the_whole_decode() -> None:
    tokenizer = ByteTokenizer()
    tokens = [104, 0xE6, 0x97, 105, 0xFF, 256]  # a truncated character, a stray byte, EOS
    assert "".join(stream(tokenizer, tokens)) == tokenizer.decode(tokens)


def test_json_tokenizer_stream_joins_into_its_whole_decode() -> None:
    tokenizer = JsonTokenizer(MINILM / "tokenizer.json")
    tokens = tokenizer.encode("Streaming tokenizers join word pieces back together.")
    assert "".join(stream(tokenizer, tokens)) == tokenizer.decode(tokens)


def test_embedding_codec_makes_one_unpadded_request_per_text() -> None:
    codec = EmbeddingCodec(EmbedConfig(max_tokens=8, max_texts=3), MINILM)
    requests = codec.encode(["hello world", "a much longer sentence that goes past eight tokens"])
    assert [r["input_ids"].shape for r in requests] == [(1, 4), (1, 8)]  # [CLS] .. [SEP]
    assert requests[0]["attention_mask"].tolist() == [[1, 1, 1, 1]]
    assert requests[1]["input_ids"][0, -1] == 102  # truncated, still ends with [SEP]
    with pytest.raises(InvalidInput):
        codec.encode(["a"] * 4)


def test_bytes_tensors_decode_as_utf8() -> None:
    values = np.array([b"caf\xc3\xa9", b"x"], dtype=object)
    assert decode_texts(values, "text") == ["café", "x"]
    with pytest.raises(InvalidInput):
        decode_texts(np.array([b"\xff"], dtype=object), "text")
