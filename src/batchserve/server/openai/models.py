"""`GET /openai/v1/models[/{model}]`, and finding the model a request body names."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from batchserve.errors import InvalidParameter
from batchserve.repository.loaded_model import LoadedModel
from batchserve.server.context import context
from batchserve.server.inference import find_model
from batchserve.server.middleware import record_model

router = APIRouter()

PREFIX = "/openai/v1"
#: The tasks these routes serve, and the route for each.
TASK_ROUTES = {"generate": f"{PREFIX}/completions", "embed": f"{PREFIX}/embeddings"}


@router.get(f"{PREFIX}/models")
async def list_models(request: Request) -> JSONResponse:
    """The text models loaded now (image models have no OpenAI route)."""
    newest: dict[str, LoadedModel] = {}
    for model in context(request).manager.loaded():
        if model.config.task in TASK_ROUTES and (
            model.name not in newest or model.version > newest[model.name].version
        ):
            newest[model.name] = model
    return JSONResponse(
        {"object": "list", "data": [_description(newest[name]) for name in sorted(newest)]}
    )


@router.get(f"{PREFIX}/models/{{model}}")
async def retrieve_model(request: Request, model: str) -> JSONResponse:
    found = await find_model(request, model, None)
    record_model(request, found.name)
    return JSONResponse(_description(found))


async def openai_model(request: Request, name: str, task: str) -> LoadedModel:
    """The newest version of the model `name`, which must do `task`."""
    model = await find_model(request, name, None)
    if model.config.task != task:
        elsewhere = TASK_ROUTES.get(model.config.task)
        hint = f"; use {elsewhere}" if elsewhere else ""
        raise InvalidParameter(
            "model",
            f"model {name!r} does not {_VERBS[task]} (task: {model.config.task}){hint}",
            code="model_not_supported",
        )
    record_model(request, model.name)
    return model


_VERBS = {"generate": "generate text", "embed": "embed text"}


def _description(model: LoadedModel) -> dict[str, object]:
    return {
        "id": model.name,
        "object": "model",
        "created": int(model.loaded_at),
        "owned_by": "batchserve",
    }
