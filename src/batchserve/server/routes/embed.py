"""`POST /v1/models/{name}[/versions/{v}]/embed` `{"texts": [...]}` (or `"text"`): one unit
vector per text. (v2 `infer` on an embedding model takes a BYTES `text` tensor.)"""

from __future__ import annotations

import json
import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from batchserve.errors import InvalidInput
from batchserve.server.context import context
from batchserve.server.inference import requested_model
from batchserve.server.requests import model_route, read_json_object
from batchserve.server.text import embed

router = APIRouter(tags=["text"])


@model_route(router, "POST", "/v1/models/{name}/embed")
async def embed_texts(request: Request) -> Response:
    """Embed `texts` (a list of strings) or `text` (one string)."""
    started = time.perf_counter()
    model = await requested_model(request)
    doc = await read_json_object(request)
    texts = doc.get("texts", [doc["text"]] if "text" in doc else None)
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput("the body needs 'texts': a list of strings (or 'text': a string)")
    vectors = await embed(request, model, texts)
    payload = await context(request).off_loop(
        lambda: json.dumps(
            {
                "model": model.name,
                "version": model.version,
                "dimensions": int(vectors.shape[1]),
                "embeddings": vectors.tolist(),
                "timings_ms": {"total": round((time.perf_counter() - started) * 1000, 3)},
            }
        ).encode(),
    )
    return Response(payload, media_type="application/json")
