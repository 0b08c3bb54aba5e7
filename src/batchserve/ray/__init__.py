"""The model repository as a Ray Serve application: batchserve's own engine in each replica.

    serve run serve_config.yaml     # applications: [{import_path: batchserve.ray:app, args: ...}]
    batchserve serve --ray [ADDRESS] --repository models --ray-replicas 2

`app` and `RayAppArgs` import Ray (`pip install 'batchserve[ray]'`) when first used, so
that `batchserve serve`'s flags are there without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchserve.ray.application import RayAppArgs, app

__all__ = ["RayAppArgs", "app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from batchserve.ray import application

        return getattr(application, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
