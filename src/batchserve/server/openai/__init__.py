"""OpenAI-compatible routes under `/openai/v1` (`/v1/models` is batchserve's own):
embeddings, completions and the model list, for the OpenAI client libraries.

Errors on them have OpenAI's shape; `server/errors.py` builds it, keyed by the prefix.
"""

from fastapi import APIRouter

from batchserve.server.openai import completions, embeddings, models
from batchserve.server.openai.models import PREFIX

# Each route spells its whole path (no router prefix), so that the metrics' route label
# is the whole path too.
router = APIRouter(tags=["openai"])
for _routes in (models, embeddings, completions):
    router.include_router(_routes.router)

__all__ = ["PREFIX", "router"]
