"""Stop sequences in text that arrives in pieces."""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    """Finds the first stop sequence in streamed text.

    `push` returns the text that is safe to pass on: a tail that could still be the
    start of a stop sequence is held back until the next piece settles it, so no
    text from a stop sequence onwards is ever passed on, whatever the pieces' sizes.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._longest = max((len(s) for s in self._stops), default=0)
        self._held = ""
        self.stopped = False

    def push(self, piece: str) -> str:
        """The text that may go out now; once a stop sequence is found, the text before
        it (and `stopped` is set), then nothing more."""
        if self.stopped:
            return ""
        text = self._held + piece
        found = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        if found:
            self.stopped = True
            self._held = ""
            return text[: min(found)]
        keep = self._partial_stop(text)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        """At the end of the text: what was held back (it never became a stop)."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _partial_stop(self, text: str) -> int:
        """The length of the longest end of `text` that begins some stop sequence."""
        for n in range(min(self._longest - 1, len(text)), 0, -1):
            tail = text[-n:]
            if any(s.startswith(tail) for s in self._stops):
                return n
        return 0
