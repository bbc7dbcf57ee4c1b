"""A run's arguments, checked once: plan(variant_id, ...) -> Plan, or ValueError naming the problem
and the valid choices. The command line parses its flags into these arguments and lets plan() judge
them; nothing else validates a run.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import torch

from ..catalogue import Variant, lookup

DTYPE_NAMES = {
    "float32": "float32", "float": "float32", "torch.float32": "float32",
    "float64": "float64", "double": "float64", "torch.float64": "float64",
}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64}

SEED_LIMIT = 2**32  # np.random.seed and random.seed accept any int, NumPy's legacy seeding only 0 .. 2**32 - 1
INT_LIMIT = 2**31 - 1  # every integer hyperparameter is a count or a size
NON_NEGATIVE = ("lr", "momentum")  # torch.optim rejects negative values of these
SIZE_EXEMPT = ("steps", "batch_size")  # counts that allocate nothing in proportion


def canonical_dtype(variant: Variant, dtype: Any) -> str:
    if dtype is None:
        return variant.default_dtype
    name = DTYPE_NAMES.get(str(dtype).removeprefix("<class '").removesuffix("'>").replace("numpy.", ""))
    if name is None or name not in variant.dtypes:
        raise ValueError(
            f"dtype {dtype!r} is not supported by {variant.id}. Valid choices: {', '.join(variant.dtypes)}"
        )
    return name


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"CUDA not available: torch {torch.__version__} is a CPU-only build"
    return f"CUDA not available: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"


def check_device(variant: Variant, device: Any) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a device name. Valid choices: cpu, cuda, cuda:N") from exc
    if dev.type not in variant.devices:
        raise ValueError(
            f"{variant.id} cannot run on {dev.type!r}. Valid choices: {', '.join(variant.devices)}"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but CUDA is not available here "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}). Valid choices: cpu"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"device {device!r} does not exist. Valid choices: "
                + ", ".join(["cpu"] + [f"cuda:{i}" for i in range(count)])
            )
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r} is not supported. Valid choices: cpu, cuda")
    elif dev.index not in (None, 0):  # torch accepts "cpu:1" and runs on the one CPU device
        raise ValueError(f"device {device!r} does not exist: there is one CPU device. Valid choices: cpu")
    return dev


def check_value(variant: Variant, name: str, value: Any, default: Any) -> Any:
    """`value` for hyperparameter `name`, converted to its default's type; ValueError if out of range."""
    if name in variant.choices and value not in variant.choices[name]:
        raise ValueError(
            f"{name}={value!r} is not valid for {variant.id}. Valid choices: "
            + ", ".join(map(str, variant.choices[name]))
        )
    if isinstance(default, bool) or isinstance(default, str):
        if type(value) is not type(default):
            raise ValueError(f"{name} must be a {type(default).__name__}, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if isinstance(default, int):
            if not float(value).is_integer() or not 1 <= value <= INT_LIMIT:
                raise ValueError(f"{name} must be a whole number from 1 to {INT_LIMIT}, got {value!r}")
            return int(value)
        if name in NON_NEGATIVE and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return float(value)
    return value


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_sizes(variant: Variant, hp: Mapping[str, Any]) -> None:
    """Refuse sizes whose largest tensor (the product of two sizes, as N x D_in) cannot fit in memory,
    before any allocation fails halfway through a run."""
    sizes = {k: v for k, v in hp.items() if type(v) is int and k not in SIZE_EXEMPT}
    memory = _memory_bytes()
    if not sizes or memory is None:
        return
    names = sorted(sizes, key=sizes.get, reverse=True)[:2]
    elements = math.prod(sizes[n] for n in names)
    needed = elements * 8  # float64, the widest dtype a run may use
    if needed > memory:
        raise ValueError(
            f"{' x '.join(f'{n}={sizes[n]}' for n in names)} needs a tensor of {elements:.3g} numbers "
            f"({needed / 2**30:.3g} GiB in float64), more than this machine's {memory / 2**30:.3g} GiB of memory"
        )


def resolve_hyperparameters(variant: Variant, overrides: Mapping[str, Any]) -> dict[str, Any]:
    hp = dict(variant.hyperparameters)
    for name, value in overrides.items():
        if name not in hp or name == "steps":
            valid = [k for k in hp if k != "steps"]
            raise ValueError(
                f"unknown override {name!r} for {variant.id}. Valid choices: {', '.join(valid)}"
                " (use steps= for the number of steps)"
            )
        hp[name] = check_value(variant, name, value, hp[name])
    _check_sizes(variant, hp)
    return hp


@dataclass(frozen=True, eq=False)
class Plan:
    """A run's arguments, checked and resolved. Plans that make the same run are equal and hash
    alike, however their arguments were spelled (dtype "double" is "float64", defaults filled in)."""

    variant: Variant
    seed: int
    device: torch.device
    dtype: str
    steps: int
    threads: int | None
    hyperparameters: Mapping[str, Any]
    compile: str | None = None

    def key(self) -> tuple:
        return (self.variant.id, self.seed, str(self.device), self.dtype, self.steps, self.threads,
                tuple(sorted(self.hyperparameters.items())), self.compile)

    def arguments(self) -> dict[str, Any]:
        """plan()'s arguments that make this plan again (the hyperparameters that differ from the variant's)."""
        overrides = {k: v for k, v in self.hyperparameters.items()
                     if k != "steps" and v != self.variant.hyperparameters.get(k)}
        return dict(seed=self.seed, device=str(self.device), dtype=self.dtype, steps=self.steps,
                    threads=self.threads, compile=self.compile, **overrides)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())


class BadArgument(ValueError):
    """A run argument out of its range; the command line words it by its flag (--seed 5: must be ...)."""

    def __init__(self, argument: str, value: Any, requirement: str, message: str):
        self.argument, self.value, self.requirement = argument, value, requirement
        super().__init__(message)


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise BadArgument("seed", seed, f"from 0 to {SEED_LIMIT - 1} (NumPy's seeding accepts no more than 32 bits)",
                          f"seed must be a non-negative integer below 2**32 ({SEED_LIMIT}), got {seed!r}")
    return seed


def check_count(name: str, value: Any, *, optional: bool = False) -> int | None:
    """steps and threads: an integer, 1 or more (threads may be None: leave torch's setting)."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadArgument(name, value, "1 or more",
                          f"{name} must be an integer >= 1{' or None' if optional else ''}, got {value!r}")
    return value


def parse_seeds(text: str) -> list[int]:
    """'0-4,7' -> [0, 1, 2, 3, 4, 7] (the --seeds of the calibration and the benchmarks)."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


def plan(
    variant_id: str,
    *,
    seed: int = 0,
    device: Any = "cpu",
    dtype: Any = None,
    steps: int | None = None,
    threads: int | None = None,
    compile: str | None = None,
    **overrides: Any,
) -> Plan:
    """Check every argument of a run; raise ValueError naming the problem and the valid choices."""
    variant = lookup(variant_id)
    check_seed(seed)
    steps = check_count("steps", variant.steps if steps is None else steps)
    check_count("threads", threads, optional=True)
    dev = check_device(variant, device)
    dtype_name = canonical_dtype(variant, dtype)
    hyperparameters = resolve_hyperparameters(variant, overrides)
    if variant.family == "mnist" and hyperparameters.get("data_root"):
        from ..mnist.data import check_root

        check_root(hyperparameters["data_root"])  # the files, before a run that would fail on them
    return Plan(
        variant=variant,
        seed=seed,
        device=dev,
        dtype=dtype_name,
        steps=steps,
        threads=threads,
        hyperparameters=MappingProxyType(hyperparameters),
        compile=_check_compile(variant, compile),
    )


def _check_compile(variant: Variant, compile: Any) -> str | None:
    if compile is None:
        return None  # eager runs never import the compiler stack
    from .compiling import check_compile

    return check_compile(variant, compile)
