"""The run layer: plan (every argument checked once) -> execute (seeding, placement, threads,
precision, compile, recording) -> Trajectory (the run's record, and the files that hold it).

    from reference.harness import plan, execute, draw_start, run, Trajectory

Attributes load on first use: `reference.harness.threads` (the gate's thread count) is read by the
pytest controller, which imports no torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "Plan": "planning", "plan": "planning", "canonical_dtype": "planning", "check_device": "planning",
    "resolve_hyperparameters": "planning", "SEED_LIMIT": "planning", "TORCH_DTYPES": "planning",
    "NUMPY_DTYPES": "planning",
    "execute": "running", "run": "running", "draw_start": "running", "thread_count": "running",
    "seed_everything": "running", "full_precision_matmul": "running", "check_full_precision": "running",
    "place": "running",
    "Trajectory": "trajectory",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'reference.harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
