"""Reading a PyTorch artifact: what kind it is (from its content, not its name) and the
module it holds.

A TorchScript archive holds `constants.pkl`, an exported program `archive_format`, a
`.safetensors` file tensors only (it needs the module class from model.yaml). Anything
else goes through `torch.load(weights_only=True)`; a pickled whole `nn.Module` can run
arbitrary code when loaded, so it needs the operator's `allow_pickle: true`.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from batchserve.errors import ModelLoadError


def artifact_kind(path: Path) -> str:
    """'safetensors', 'export', 'torchscript' or 'torch.load', from the file's content."""
    if path.suffix == ".safetensors":
        return "safetensors"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n == "archive_format" or n.endswith("/archive_format") for n in names):
            return "export"
        if any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in names):
            return "torchscript"
    return "torch.load"


def module_from_class_path(class_path: str | None, kwargs: Mapping[str, object], path: Path):
    if not class_path:
        raise ModelLoadError(
            f"{path}: weights without a module; set `torch: {{module: 'package.module:Class'}}` "
            "in model.yaml"
        )
    module_name, _, attr_path = class_path.partition(":")
    if not module_name or not attr_path:
        raise ModelLoadError(f"torch module {class_path!r}: expected 'package.module:Class'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"torch module {class_path!r} cannot be imported: {exc}") from exc
    try:
        module = target(**dict(kwargs))
    except Exception as exc:  # the user's constructor: any failure is a load failure
        raise ModelLoadError(f"torch module {class_path!r}({dict(kwargs)}) failed: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"torch module {class_path!r} built a {type(module).__name__}")
    return module


def load_state_dict(module: torch.nn.Module, state: Mapping[str, Any], path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path}: weights do not fit {type(module).__name__}: {exc}") from exc


def torch_load(
    path: Path, *, allow_pickle: bool, module: str | None, kwargs: Mapping[str, object]
) -> torch.nn.Module:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"{path} holds pickled Python objects (a whole nn.Module?), which can run "
            "arbitrary code when loaded; set `allow_pickle: true` in model.yaml only if you "
            f"trust this file, or save a state_dict / TorchScript / torch.export instead ({exc})"
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a loadable torch file: {exc}") from exc
    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, Mapping):
        built = module_from_class_path(module, kwargs, path)
        load_state_dict(built, obj, path)
        return built
    raise ModelLoadError(f"{path}: holds a {type(obj).__name__}, not a module or a state_dict")


def load_safetensors(
    path: Path, module: str | None, kwargs: Mapping[str, object]
) -> torch.nn.Module:
    """The module class from model.yaml, built and filled with the file's weights."""
    from safetensors.torch import load_file

    built = module_from_class_path(module, kwargs, path)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a loadable safetensors file: {exc}") from exc
    load_state_dict(built, state, path)
    return built
