"""Stop sequences found in text that arrives in pieces of any size."""

from __future__ import annotations

import pytest

from batchserve.server.openai.stop import StopScanner

TEXT = "Return the context of the context manager.\n\nArgs:\n    path: a file"


def scan(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    scanner = StopScanner(stops)
    out = []
    for piece in pieces:
        out.append(scanner.push(piece))
        if scanner.stopped:
            break
    out.append(scanner.flush())
    return "".join(out), scanner.stopped


def splits(text: str) -> list[list[str]]:
    """The text in one piece, a character at a time, and cut in two everywhere."""
    return [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]


@pytest.mark.parametrize(
    ("stops", "expected"),
    [
        (["\n\n"], "Return the context of the context manager."),
        (["context m", "Args"], "Return the context of the "),
        (["Args", "context m"], "Return the context of the "),  # the earliest wins
        (["xyz"], TEXT),
        (["e"], "R"),
        ([TEXT], ""),
    ],
)
def test_the_text_ends_before_the_first_stop_however_it_is_cut(
    stops: list[str], expected: str
) -> None:
    for pieces in splits(TEXT):
        text, stopped = scan(stops, pieces)
        assert text == expected, pieces
        assert stopped == (expected != TEXT)


def test_a_possible_start_of_a_stop_is_held_back_until_settled() -> None:
    scanner = StopScanner(["\n\nArgs"])
    assert scanner.push("manager.\n") == "manager."
    assert scanner.push("\nA") == ""  # "\n\nA" may still become the stop
    assert scanner.push("rgx") == "\n\nArgx"  # it did not
    assert scanner.push("\n") == ""
    assert scanner.flush() == "\n"  # the end came first: what was held goes out


def test_no_stop_sequences_pass_everything_at_once() -> None:
    scanner = StopScanner([])
    assert scanner.push("abc") == "abc"
    assert scanner.flush() == "" and not scanner.stopped
