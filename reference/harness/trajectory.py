"""Trajectory, a run's record, and trajectories on disk: the one module that writes and reads
them, with one float encoding.

- results files ({"schema": 1, "trajectories": [...]}): `python -m reference run --out`, `check
  --out`, `pytest --record-trajectories`. The final parameters are kept as a digest (sha256 of the
  exact values: equal or not) and a record (params_record: small tensors whole, large ones as shape,
  sum and norm: what the policy's parameter check reads), unless full values are asked for
  (`run --out --full-params`: MNIST's 670k parameters make ~15 MB of JSON a run);
- golden files (reference/judge/goldens.py lays them out; their losses use the same encoding).

Floats are JSON numbers (Python's repr: shortest round trip, exact for float32 and float64); nan and
inf, which JSON lacks, are the strings "nan", "inf", "-inf". Every file is written atomically.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from ..files import atomic_write

SCHEMA = 1


@dataclass(frozen=True)
class Trajectory:
    """One run: the loss at every step (computed before that step's update) and the final params."""

    variant: str
    seed: int
    device: str
    dtype: str
    steps: int
    threads: int
    losses: list[float]
    params: dict[str, torch.Tensor] = field(repr=False)
    hyperparameters: dict[str, Any]
    torch_version: str
    numpy_version: str
    python_version: str
    cpu_capability: str
    # Read back from torch inside the run: may a float32 matmul on the run's device use TF32?
    # False on CUDA (the harness switches it off); None on the CPU (no TF32 path there).
    tf32: bool | None
    wall_time_s: float
    # what decides the bits beyond the versions (reference.harness.environment.describe, plus the thread
    # count); {} in results written before it was recorded
    environment: dict[str, Any] = field(default_factory=dict)
    # CUDA runs: reference.harness.precision.matmul_probe on the device inside the run (max relative error
    # of a float32 matmul and F.linear against float64); IEEE float32 ~1e-7, TF32 ~1e-4 .. 1e-3.
    float32_matmul_error: dict[str, float] | None = None
    # torch.compile mode (reference/harness/compiling.py): None = eager; the backend's graphs, graph
    # breaks and recompiles over the run. Defaults, so that files written before load.
    compile: str | None = None
    compile_stats: dict[str, int] = field(default_factory=dict)
    trace: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # op trace (reference.trace)
    # a fingerprint of the state entering each step, and after the last (reference/harness/state.py);
    # None when the run kept none
    state_digests: list[str] | None = field(default=None, repr=False, compare=False)
    # the final parameters' record when the full values were not kept (results files read back)
    params_summary: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def params_record(self) -> dict[str, Any]:
        """The final parameters as the policy judges them (params_record), from the values if kept."""
        if self.params:
            return params_record(self.params)
        return dict(self.params_summary or {})

    def to_json_dict(self) -> dict[str, Any]:
        """Every field, the final parameters in full (a round trip: from_json_dict gives it back)."""
        return to_json(self, full_params=True)

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> "Trajectory":
        return from_json(d)


def encode_float(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


def encode_floats(values: Iterable[float]) -> list[float | str]:
    return [encode_float(float(x)) for x in values]


def decode_floats(values: Sequence[Any]) -> list[float]:
    """ValueError / TypeError for anything but numbers and the three non-finite strings."""
    return [float(x) for x in values]


SMALL_PARAM = 16  # parameters up to this many numbers are recorded whole; larger ones as a summary


def params_record(params: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Reviewable final parameters: the values of small ones, shape / sum / norm of large ones.

    The sums are exactly rounded (math.fsum), so a record does not depend on the thread count or
    the kernels that compute it (torch's own sum does: it gave two records of one run at 1 and 2
    threads that differed in the 15th digit)."""
    out: dict[str, Any] = {}
    for name, p in params.items():
        values = p.detach().to("cpu", torch.float64).reshape(-1).numpy()
        if values.size <= SMALL_PARAM:
            out[name] = values.tolist()
        else:
            out[name] = {"shape": list(p.shape), "sum": math.fsum(values.tolist()),
                         "norm": math.sqrt(math.fsum((values * values).tolist()))}
    return out


def params_digest(params: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """name -> "shape sha256" of the values as float64 (exact for float32 and float64 params, so a
    digest of a run equals the digest of its JSON round trip)."""
    out = {}
    for name, value in params.items():
        array = value.detach().to("cpu", torch.float64).contiguous().numpy()
        out[name] = f"{list(array.shape)} {hashlib.sha256(array.tobytes()).hexdigest()}"
    return out


def to_json(t: Trajectory, *, full_params: bool = False) -> dict[str, Any]:
    d = {name: getattr(t, name) for name in Trajectory.__dataclass_fields__
         if name not in ("params", "params_summary")}
    d["losses"] = encode_floats(t.losses)
    if t.params:
        d["param_shapes"] = {k: list(v.shape) for k, v in t.params.items()}
        d["params_sha256"] = params_digest(t.params)
    d["params_record"] = t.params_record()
    d["params"] = {k: v.double().flatten().tolist() for k, v in t.params.items()} if full_params else {}
    return d


def from_json(d: Mapping[str, Any]) -> Trajectory:
    d = dict(d)
    shapes = d.pop("param_shapes", {})
    d["params"] = {
        k: torch.tensor(v, dtype=torch.float64).reshape(shapes.get(k, [len(v)])) for k, v in d["params"].items()
    }
    d["params_summary"] = d.pop("params_record", None)
    d["losses"] = decode_floats(d["losses"])
    known = set(Trajectory.__dataclass_fields__)
    return Trajectory(**{k: v for k, v in d.items() if k in known})


def save_trajectories(path: Path | str, trajectories: Sequence[Trajectory], *, overwrite: bool = True,
                      full_params: bool = False, recorded_by: str | None = None) -> int:
    """A results file, atomically (temp file + rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    head: dict[str, Any] = {"schema": SCHEMA}
    if recorded_by is not None:
        head["recorded_by"] = recorded_by  # first in the file: recording.py recognises its own files by it
    entries = [to_json(t, full_params=full_params) for t in trajectories]
    # one line per trajectory: a machine file (goldens are the reviewed ones), a third smaller than indented
    text = ("{" + json.dumps(head)[1:-1] + ', "trajectories": [\n'
            + ",\n".join(json.dumps(e, separators=(",", ":")) for e in entries) + "\n]}\n")
    data = text.encode()
    atomic_write(target, lambda f: f.write(data), overwrite=overwrite)
    return len(data)


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
