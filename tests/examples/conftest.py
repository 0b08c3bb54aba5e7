from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live_server import PROJECT_ROOT, LiveServer

EXAMPLES = PROJECT_ROOT / "examples"


@pytest.fixture(scope="session")
def examples_server() -> Iterator[LiveServer]:
    """The real server on the repository's examples/ folder, as a user would serve it."""
    with LiveServer([EXAMPLES]) as server:
        yield server
