"""Saving and loading a model's state_dict, as blog-mnist-2021 plans to (torch.save / load_state_dict).

The file is a plain state_dict, as `torch.save(model.state_dict(), path)` writes it, so files
move both ways between these helpers and the tutorial's two lines. What the helpers add:
  - save_state_dict never replaces an existing file unless overwrite=True, and writes atomically;
  - load_state_dict reads with weights_only=True, and says clearly when the file is damaged, is not
    a state_dict, or belongs to another architecture (missing / unexpected keys, other shapes).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping, TypeVar

import torch

from ..files import atomic_write

M = TypeVar("M", bound=torch.nn.Module)


class CheckpointError(ValueError):
    """A checkpoint file cannot be loaded into the model asked for."""


def save_state_dict(model: torch.nn.Module, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """torch.save(model.state_dict(), path), atomically; FileExistsError if path exists and not overwrite."""
    state = model.state_dict()
    return atomic_write(path, lambda f: torch.save(state, f), overwrite=overwrite)


def _is_module_class(qualified: str) -> bool:
    """Whether `qualified` names an nn.Module class of a module already imported (nothing is
    imported on a file's say-so)."""
    module_name, _, name = qualified.rpartition(".")
    cls = getattr(sys.modules.get(module_name), name, None)
    return isinstance(cls, type) and issubclass(cls, torch.nn.Module)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict in `path`, on the CPU; CheckpointError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a damaged file
        # torch 2.9 .. 2.14 say "Unsupported global: GLOBAL mod.Class", torch 2.1 "Unsupported class mod.Class"
        refused = re.search(r"Unsupported (?:global: GLOBAL|class) ([\w.]+)", str(exc))
        if refused and _is_module_class(refused.group(1)):
            raise CheckpointError(
                f"{path}: holds a whole pickled model ({refused.group(1).rsplit('.', 1)[-1]}, from torch.save(model)), "
                "not a state_dict; save one with torch.save(model.state_dict(), path) (or, for a file you trust, "
                "torch.load(path, weights_only=False).state_dict())"
            ) from None
        if refused:
            raise CheckpointError(
                f"{path}: holds Python objects ({refused.group(1)}) that safe loading (weights_only=True) refuses, "
                "not a state_dict of tensors"
            ) from None
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a readable torch.save file (damaged or truncated?): {type(exc).__name__}: {detail[:200]}"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state_dict (names -> tensors)")
    return dict(state)


def check_fits(state: Mapping[str, torch.Tensor], model: torch.nn.Module, name: str = "the file") -> None:
    """Raise CheckpointError listing every key and shape by which `state` and `model` differ."""
    expected = model.state_dict()
    problems = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        problems.append("missing " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected " + ", ".join(unexpected))
    for k in expected:
        if k in state and state[k].shape != expected[k].shape:
            problems.append(f"{k} is {list(state[k].shape)} in the file, {list(expected[k].shape)} in the model")
    if problems:
        raise CheckpointError(
            f"{name} was saved from another architecture than {type(model).__name__}: " + "; ".join(problems)
        )


def load_state_dict(model: M, path: str | os.PathLike) -> M:
    """model.load_state_dict(torch.load(path)), checked first; returns the model."""
    state = read_state_dict(path)
    check_fits(state, model, str(path))
    model.load_state_dict(state)
    return model
