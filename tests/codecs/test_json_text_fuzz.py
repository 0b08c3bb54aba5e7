"""Fuzz target: the strict JSON reader every client body goes through."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batchserve.codecs.json_text import load_json
from batchserve.errors import InvalidInput

pytestmark = pytest.mark.fuzz

#: Any JSON document, strings with any code point (lone surrogates included).
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(codec=None)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(codec=None), max_size=4), inner, max_size=4)
    ),
    max_leaves=30,
)


def _encodes(doc: object) -> bool:
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(st.binary(max_size=2000))
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'"\\ud800"')
@example(b'{"\\udfff": 1}')
@example(b'"\\\\ud800"')  # an escaped backslash, then text: a plain string
@example(b"\xed\xa0\x80")  # a surrogate as raw bytes: not UTF-8
@example(b"1" * 5000)  # past Python's limit on digits in an int
def test_any_bytes_are_a_document_or_invalid_input(data: bytes) -> None:
    try:
        doc = load_json(data)
    except InvalidInput:
        return
    assert _encodes(doc)


@given(documents)
def test_any_document_round_trips_or_is_refused_for_a_surrogate(doc: object) -> None:
    data = json.dumps(doc).encode()
    if _encodes(doc):
        # Compared as JSON text: NaN is never equal to itself, its text is.
        assert json.dumps(load_json(data)) == data.decode()
    else:
        with pytest.raises(InvalidInput, match="surrogate"):
            load_json(data)


@given(st.integers(0, 300_000), st.sampled_from(["[", '{"a":']))
def test_any_depth_is_a_document_or_invalid_input(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    data = (opener * depth + "1" + closer * depth).encode()
    try:
        load_json(data)
    except InvalidInput as exc:
        assert "nested too deeply" in str(exc)
