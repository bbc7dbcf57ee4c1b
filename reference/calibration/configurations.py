"""The benign configurations (specs/benign_configurations.toml): the calibration's ensemble, and the
CI rotation that runs the gate under one of them a day."""
from __future__ import annotations

import datetime
import os
from functools import cache
from typing import Mapping

from ..catalogue import load_toml

THREADS_ENV = "TES_THREADS"


@cache
def _table() -> dict:
    return load_toml("benign_configurations.toml")


def benign() -> dict[str, tuple[dict[str, str], int]]:
    """name -> (environment variables of its process, torch / BLAS threads), in the file's order."""
    return {name: (dict(row.get("env", {})), int(row["threads"])) for name, row in _table().items()}


def numpy_only() -> set[str]:
    return {name for name, row in _table().items() if row.get("numpy_only", False)}


def rotation() -> list[str]:
    """The configurations CI visits, a day each: all but canonical and the NumPy-only ones."""
    return [name for name in benign() if name != "canonical" and name not in numpy_only()]


def config_of_the_day(today: datetime.date | None = None) -> str:
    today = today or datetime.date.today()
    names = rotation()
    return names[today.toordinal() % len(names)]


def environment(name: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment of configuration `name`: `base` (default: this process's) with its
    variables set and TES_THREADS at its thread count."""
    env_vars, threads = benign()[name]
    return {**(os.environ if base is None else base), **env_vars, THREADS_ENV: str(threads)}
