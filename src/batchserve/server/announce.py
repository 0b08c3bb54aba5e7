"""The lines that tell a supervisor (a test harness, a Procfile runner, a person) where
the server listens.

Each is written to stdout in one write. `print` writes the text and its newline
separately, so with unbuffered output (PYTHONUNBUFFERED=1, as CI and containers set
it) a log line from another thread on the same pipe could land between them, and the
address read back became "127.0.0.1:39437" followed by a timestamp.
"""

from __future__ import annotations

import sys


def announce(line: str) -> None:
    """Write `line` and its newline to stdout at once, and flush."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
