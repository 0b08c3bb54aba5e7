"""A real server with the text models and a token, and the official `openai` client
pointed at its OpenAI-compatible routes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.live_server import LiveServer
from tests.server.text_models import text_repository

TOKEN = "openai-routes-test-token"


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    repo = text_repository(tmp_path_factory.mktemp("text-models"))
    with LiveServer([repo], "--auth-token", TOKEN, wait_ready=False) as live:
        live.wait_ready(90, headers=auth())
        yield live


@pytest.fixture(scope="package")
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    # No retries: a test must see the first answer, and never wait out a back-off.
    with openai.OpenAI(
        base_url=f"{server.url}/openai/v1", api_key=TOKEN, max_retries=0, timeout=30
    ) as c:
        yield c


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def metric(server: LiveServer, name: str, labels: str) -> float | None:
    """One sample of the server's /metrics, e.g. ('batchserve_batch_occupancy',
    'model="docgen_one",version="1"'); None when the series is absent."""
    text = httpx.get(f"{server.url}/metrics", headers=auth(), timeout=10).text
    prefix = f"{name}{{{labels}}} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None
