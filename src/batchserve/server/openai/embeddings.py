"""`POST /openai/v1/embeddings`: OpenAI's embeddings on an embedding model (task: embed)."""

from __future__ import annotations

import base64
import json

import numpy as np
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from batchserve.errors import InvalidParameter
from batchserve.server.context import context
from batchserve.server.openai.models import TASK_ROUTES, openai_model
from batchserve.server.openai.parameters import EmbeddingsBody, blame, parse_body
from batchserve.server.requests import read_json_object
from batchserve.server.text import Embeddings, embed_texts

router = APIRouter()


@router.post(TASK_ROUTES["embed"])
async def create_embeddings(request: Request) -> Response:
    """One vector per input text, as floats or as base64 of little-endian float32."""
    body = parse_body(EmbeddingsBody, await read_json_object(request))
    model = await openai_model(request, body.model, "embed")
    dims = model.outputs[0].shape[-1]
    if body.dimensions is not None and body.dimensions != dims:
        raise InvalidParameter(
            "dimensions", f"model {model.name!r} makes {dims}-dimensional vectors, not others"
        )
    with blame("input"):
        embedded = await embed_texts(request, model, list(body.input))
    payload = await context(request).off_loop(
        _encode, model.name, embedded, body.encoding_format or "float"
    )
    return Response(payload, media_type="application/json")


def _encode(model: str, embedded: Embeddings, encoding_format: str) -> bytes:
    def vector(row: np.ndarray) -> list[float] | str:
        if encoding_format == "base64":
            return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
        return row.tolist()

    tokens = sum(embedded.token_counts)
    return json.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector(row)}
                for i, row in enumerate(embedded.vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    ).encode()
