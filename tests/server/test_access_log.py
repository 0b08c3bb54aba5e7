"""The access-log writer: every line written, in order, in batches, off the caller's thread."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from batchserve.server.access_log import ACCESS_LOGGER, AccessLogWriter


class CountingStream(io.StringIO):
    """A stream that counts its flushes (one per batch, not one per line)."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@pytest.fixture
def root_handler() -> Iterator[tuple[logging.Handler, CountingStream]]:
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    access = logging.getLogger(ACCESS_LOGGER)
    before = (list(access.handlers), access.propagate, access.level)
    access.setLevel(logging.INFO)
    yield handler, stream
    root.removeHandler(handler)
    access.handlers[:], access.propagate, access.level = before


def test_every_line_is_written_in_order_with_fewer_flushes(root_handler):
    _, stream = root_handler
    writer = AccessLogWriter()
    writer.start()
    access = logging.getLogger(ACCESS_LOGGER)
    for i in range(2000):
        access.info("line %d", i)
    writer.stop()
    assert stream.getvalue().splitlines() == [f"line {i}" for i in range(2000)]
    assert stream.flushes < 2000


def test_a_handler_above_info_gets_no_access_lines(root_handler):
    handler, stream = root_handler
    handler.setLevel(logging.WARNING)
    writer = AccessLogWriter()
    writer.start()
    logging.getLogger(ACCESS_LOGGER).info("not for this handler")
    writer.stop()
    assert stream.getvalue() == ""
