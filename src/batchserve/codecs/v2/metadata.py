"""The plain-dict bodies of the v2 metadata and readiness endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from batchserve.datatypes import TensorSpec


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    """One input or output as the v2 metadata endpoints describe it."""
    return spec.metadata()


def model_metadata(
    name: str,
    versions: Sequence[str | int],
    platform: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
) -> dict[str, Any]:
    """The body of ``GET /v2/models/{name}[/versions/{v}]``; versions are strings per the spec."""
    return {
        "name": name,
        "versions": [str(version) for version in versions],
        "platform": platform,
        "inputs": [tensor_metadata(spec) for spec in inputs],
        "outputs": [tensor_metadata(spec) for spec in outputs],
    }


def server_metadata(name: str, version: str, extensions: Sequence[str]) -> dict[str, Any]:
    """The body of ``GET /v2``."""
    return {"name": name, "version": version, "extensions": list(extensions)}


def model_ready_body(name: str, ready: bool, version: str | int | None = None) -> dict[str, Any]:
    """A body for ``GET /v2/models/{name}/ready``.

    The spec only asks for the status code (200 ready, 400 not); a body that
    says the same helps people reading it with curl, as KServe's server does.
    """
    body: dict[str, Any] = {"name": name}
    if version is not None:
        body["version"] = str(version)
    body["ready"] = ready
    return body
