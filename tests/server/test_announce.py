"""The address lines go out in one write, so no other thread's output can split them."""

from __future__ import annotations

import io

from batchserve.server.announce import announce


class RecordingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_the_line_and_its_newline_are_one_write(monkeypatch):
    stream = RecordingStream()
    monkeypatch.setattr("sys.stdout", stream)
    announce("batchserve grpc listening on 127.0.0.1:39437")
    assert stream.writes == ["batchserve grpc listening on 127.0.0.1:39437\n"]
