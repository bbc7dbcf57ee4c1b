"""Golden trajectories: reviewable JSON under specs/goldens/<variant>/<dtype>-seed<N>.json.

Written only on request (pytest --update-goldens), atomically; read with schema checks that name
the file and what is wrong with it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .catalogue import load_variants, specs_dir
from .environment import describe as describe_environment
from .files import atomic_write
from .harness import Trajectory
from .policy import golden_seeds, golden_steps
from .threads import CANONICAL_THREADS, THREADS_ENV, gate_threads  # noqa: F401 (the golden API names them)
from .trajectory import decode_floats, encode_floats

SCHEMA = 1
CANONICAL_DEVICE = "cpu"


class GoldenError(Exception):
    """A golden file is missing, unreadable or not what it claims to be."""


@dataclass(frozen=True)
class GoldenKey:
    variant: str
    dtype: str
    seed: int

    @property
    def steps(self) -> int:
        return golden_steps(self.variant, load_variants()[self.variant].steps)

    @property
    def path(self) -> Path:
        return goldens_dir() / self.variant / f"{self.dtype}-seed{self.seed}.json"

    def __str__(self) -> str:
        return f"{self.variant}-{self.dtype}-seed{self.seed}"


GOLDENS_DIR_ENV = "TES_GOLDENS_DIR"


def goldens_dir() -> Path:
    """specs/goldens, unless TES_GOLDENS_DIR points elsewhere (the plugin's own tests use that)."""
    override = os.environ.get(GOLDENS_DIR_ENV)
    return Path(override) if override else specs_dir() / "goldens"


def all_keys(families: tuple[str, ...] | None = None) -> Iterator[GoldenKey]:
    """Every golden the policy says should exist."""
    for vid, variant in load_variants().items():
        if families is not None and variant.family not in families:
            continue
        for dtype in variant.dtypes:
            for seed in golden_seeds(vid):
                yield GoldenKey(vid, dtype, seed)


def environment() -> dict[str, Any]:
    """Versions, and what else decides the bits (reference.environment.describe): CPU model and
    instruction sets, MKL / oneDNN / NumPy BLAS and their kernel paths, the variables that steer them."""
    return {
        **describe_environment(CANONICAL_DEVICE),
        "threads": CANONICAL_THREADS,  # torch intra-op and NumPy BLAS alike
    }


# Set by the pytest plugin in xdist workers: returns why goldens must no longer be written (the
# controller has stopped), or None. A worker whose controller is gone writes nothing more.
_stop_reason: Callable[[], str | None] | None = None


def stop_writing_when(check: Callable[[], str | None] | None) -> None:
    """Install (or with None remove) the check write() consults before every golden."""
    global _stop_reason
    _stop_reason = check


def write(key: GoldenKey, trajectory: Trajectory) -> Path:
    """Write atomically: a temp file in the same directory, then rename over the target.

    A read-only golden is refused (PermissionError), not replaced; a replaced one keeps its mode.
    """
    reason = _stop_reason() if _stop_reason is not None else None
    if reason:
        raise GoldenError(f"golden {key} not written: {reason}")
    if (trajectory.variant, trajectory.dtype, trajectory.seed, trajectory.device) != (
        key.variant, key.dtype, key.seed, CANONICAL_DEVICE
    ):
        raise ValueError(f"trajectory {trajectory.variant}/{trajectory.dtype}/seed {trajectory.seed} "
                         f"on {trajectory.device} does not belong in golden {key}")
    payload = {
        "schema": SCHEMA,
        "variant": key.variant,
        "dtype": key.dtype,
        "seed": key.seed,
        "device": CANONICAL_DEVICE,
        "steps": len(trajectory.losses),
        "hyperparameters": trajectory.hyperparameters,
        "environment": environment(),
        "losses": encode_floats(trajectory.losses),
        "final_params": params_record(trajectory.params),
    }
    path = key.path
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=0) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()), overwrite=True)
    return path


SMALL_PARAM = 16  # parameters up to this many numbers are stored whole; larger ones as a summary


def params_record(params: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Reviewable final parameters: the values of small ones, shape / sum / norm of large ones."""
    out: dict[str, Any] = {}
    for name, p in params.items():
        p = p.detach().double()
        if p.numel() <= SMALL_PARAM:
            out[name] = p.flatten().tolist()
        else:
            out[name] = {"shape": list(p.shape), "sum": p.sum().item(), "norm": p.norm().item()}
    return out


REQUIRED = {"schema": int, "variant": str, "dtype": str, "seed": int, "steps": int, "losses": list,
            "environment": dict, "hyperparameters": dict}


def read(key: GoldenKey) -> dict[str, Any]:
    path = key.path
    if not path.exists():
        raise GoldenError(f"missing golden {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoldenError(f"corrupt golden {path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise GoldenError(f"corrupt golden {path}: top level is {type(data).__name__}, expected an object")
    problems = [f"'{k}' missing" for k in REQUIRED if k not in data]
    problems += [f"'{k}' is {type(data[k]).__name__}, expected {t.__name__}"
                 for k, t in REQUIRED.items() if k in data and not isinstance(data[k], t)]
    if not problems:
        if data["schema"] != SCHEMA:
            problems.append(f"schema {data['schema']}, this code reads schema {SCHEMA}")
        for field, want in (("variant", key.variant), ("dtype", key.dtype), ("seed", key.seed)):
            if data[field] != want:
                problems.append(f"{field} is {data[field]!r}, expected {want!r} for this file name")
        if len(data["losses"]) != data["steps"]:
            problems.append(f"{len(data['losses'])} losses but steps = {data['steps']}")
        try:
            data["losses"] = decode_floats(data["losses"])
        except (TypeError, ValueError):
            problems.append("losses must all be numbers")
    if problems:
        raise GoldenError(f"wrong-schema golden {path}: " + "; ".join(problems))
    return data


def unused_files() -> list[Path]:
    """Golden files on disk that no policy key names."""
    expected = {k.path.resolve() for k in all_keys()}
    root = goldens_dir()
    if not root.is_dir():
        return []
    # a golden's companion op trace (<dtype>-seed<N>.trace.json, reference/trace.py) belongs to it
    expected |= {p.with_name(p.name.removesuffix(".json") + ".trace.json") for p in expected}
    return sorted(p for p in root.rglob("*.json") if p.resolve() not in expected)


# --- what a comparison compares (a GPU box mixes device and torch version in the golden tests) ---

def recorded_on(gold: dict[str, Any]) -> str:
    """'torch 2.13.0+cpu, cpu (AVX512, 1 thread)': where a golden file was recorded."""
    env = gold.get("environment", {})
    threads = env.get("threads")
    return (f"torch {env.get('torch', '?')}, {gold.get('device', CANONICAL_DEVICE)} "
            f"({env.get('cpu_capability', '?')}, {threads} thread{'s' if threads != 1 else ''})")


def golden_label(now: Trajectory, gold: dict[str, Any]) -> str:
    """How a run relates to the golden it is judged against: which of device and torch differ."""
    env = gold.get("environment", {})
    differ = [what for what, same in (("device", now.device == gold.get("device", CANONICAL_DEVICE)),
                                      ("torch version", now.torch_version == env.get("torch"))) if not same]
    text = f"golden: {now.device} on torch {now.torch_version} vs the golden recorded on {recorded_on(gold)}"
    if len(differ) == 2:
        return text + "; device and torch version both differ (the device check compares the devices alone)"
    return text + (f"; the {differ[0]} differs" if differ else "")


def device_check_label(now: Trajectory, cpu: Trajectory) -> str:
    """'device check: cuda:0 vs cpu, same torch 2.11.0, same start': the devices alone."""
    same = (f"same torch {now.torch_version}" if now.torch_version == cpu.torch_version
            else f"torch {now.torch_version} vs {cpu.torch_version}")
    return f"device check: {now.device} vs {cpu.device}, {same}, same start"


def recorded_torch_versions() -> set[str]:
    """The torch versions the golden files on disk were recorded with."""
    root = goldens_dir()
    versions = set()
    for path in root.rglob("*.json") if root.is_dir() else []:
        try:
            versions.add(json.loads(path.read_text())["environment"]["torch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return versions
