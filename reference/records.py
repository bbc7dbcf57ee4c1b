"""Trajectories on disk: the one module that writes and reads them, with one float encoding.

- results files ({"schema": 1, "trajectories": [...]}): `python -m reference run --out` (final
  parameters in full), `pytest --record-trajectories` and `check --out` (final parameters as
  digests: a tox env records ~60 runs, MNIST's with 670k parameters each: 150 MB of JSON in full,
  ~2 MB as digests);
- golden files (reference/golden.py lays them out; their losses use the same encoding).

Floats are JSON numbers (Python's repr: shortest round trip, exact for float32 and float64); nan and
inf, which JSON lacks, are the strings "nan", "inf", "-inf". Every file is written atomically.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from .files import atomic_write
from .harness import Trajectory

SCHEMA = 1


def encode_float(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


def encode_floats(values: Iterable[float]) -> list[float | str]:
    return [encode_float(float(x)) for x in values]


def decode_floats(values: Sequence[Any]) -> list[float]:
    """ValueError / TypeError for anything but numbers and the three non-finite strings."""
    return [float(x) for x in values]


def params_digest(params: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """name -> "shape sha256" of the values as float64 (exact for float32 and float64 params, so a
    digest of a run equals the digest of its JSON round trip)."""
    out = {}
    for name, value in params.items():
        array = value.detach().to("cpu", torch.float64).contiguous().numpy()
        out[name] = f"{list(array.shape)} {hashlib.sha256(array.tobytes()).hexdigest()}"
    return out


def to_json(t: Trajectory, *, full_params: bool = True) -> dict[str, Any]:
    d = {name: getattr(t, name) for name in Trajectory.__dataclass_fields__ if name != "params"}
    d["losses"] = encode_floats(t.losses)
    d["param_shapes"] = {k: list(v.shape) for k, v in t.params.items()}
    if full_params:
        d["params"] = {k: v.double().flatten().tolist() for k, v in t.params.items()}
    else:
        d["params"] = {}
        d["params_sha256"] = params_digest(t.params)
    return d


def from_json(d: Mapping[str, Any]) -> Trajectory:
    d = dict(d)
    shapes = d.pop("param_shapes", {})
    d["params"] = {
        k: torch.tensor(v, dtype=torch.float64).reshape(shapes.get(k, [len(v)])) for k, v in d["params"].items()
    }
    d["losses"] = decode_floats(d["losses"])
    known = set(Trajectory.__dataclass_fields__)
    return Trajectory(**{k: v for k, v in d.items() if k in known})


def save_trajectories(path: Path | str, trajectories: Sequence[Trajectory], *, overwrite: bool = True,
                      full_params: bool = True, recorded_by: str | None = None) -> None:
    """A results file, atomically (temp file + rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    head: dict[str, Any] = {"schema": SCHEMA}
    if recorded_by is not None:
        head["recorded_by"] = recorded_by  # first in the file: recording.py recognises its own files by it
    entries = [to_json(t, full_params=full_params) for t in trajectories]
    text = json.dumps({**head, "trajectories": entries}, indent=1) + "\n"
    atomic_write(target, lambda f: f.write(text.encode()), overwrite=overwrite)


def read_trajectories(path: Path) -> list[tuple[Trajectory, dict[str, str]]]:
    """The trajectories of a results file, each with the digest of its final parameters.
    ValueError naming the file and what is wrong with it."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or "trajectories" not in data:
        raise ValueError(f"{path}: not a results file (expected {{\"schema\": 1, \"trajectories\": [...]}})")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: results schema {data.get('schema')!r}; this version reads schema {SCHEMA}")
    if not isinstance(data["trajectories"], list):
        raise ValueError(f"{path}: 'trajectories' is {type(data['trajectories']).__name__}, expected a list")
    out = []
    for i, item in enumerate(data["trajectories"]):
        try:
            t = from_json(item)
            digest = item.get("params_sha256") if not t.params else params_digest(t.params)
            if not isinstance(digest, dict):
                raise ValueError("neither 'params' nor 'params_sha256'")
        except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
            raise ValueError(f"{path}: trajectory {i} is malformed ({exc})") from None
        if len(t.losses) != t.steps:
            raise ValueError(f"{path}: trajectory {i} ({t.variant}) has {len(t.losses)} losses for {t.steps} steps")
        out.append((t, digest))
    return out
