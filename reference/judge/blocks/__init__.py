"""The building blocks the programs rely on without saying so, each specified on its own, one step at a
time (specs/building_blocks.toml: one row per block, the document it follows, the releases it holds on,
the programs that use it):

    optimizers.py  one SGD / Adam / RMSprop / manual step against the documented algorithm
    functions.py   MSELoss(sum), CrossEntropyLoss, nn.Linear's initialisation, Flatten(0, 1)
    data.py        the DataLoader's batches and order, torch.save / load, the seeded streams

tests/test_building_blocks.py states each over Hypothesis-drawn inputs; `check` runs them on fixed
inputs (fixed_checks()), and a golden failure of a program names a failing block of its first.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Mapping

import numpy as np

from ...catalogue import load_toml

FILE = "building_blocks.toml"


@dataclass(frozen=True)
class Block:
    id: str
    what: str
    reference: str  # the document the check follows
    verified: str  # the torch releases it was verified on
    variants: tuple[str, ...]  # the programs that use it


@cache
def blocks() -> dict[str, Block]:
    return {row["id"]: Block(row["id"], row["what"], row["reference"], row["verified"], tuple(row["variants"]))
            for row in load_toml(FILE)["block"]}


def recorded_streams() -> Mapping[str, Mapping[str, str]]:
    return load_toml(FILE)["streams"]


def blocks_of(variant: str) -> list[str]:
    return [b.id for b in blocks().values() if variant in b.variants]


# --- fixed inputs, for `check` ------------------------------------------------------------------------

def _values(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """Seeded normals with exact zeros, tiny and large magnitudes among them (what the properties draw)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale
    flat = x.reshape(-1)
    flat[:: 7] = 0.0
    flat[1:: 7] *= 1e-12
    flat[2:: 7] *= 1e6
    return x


def _step_cases(dtype: str) -> list[Any]:
    from .optimizers import StepCase

    p, g = _values(1, (4, 3)), _values(2, (4, 3))
    m, b = _values(3, (4, 3), 0.1), _values(4, (4, 3), 0.1)
    v = np.abs(_values(5, (4, 3), 0.1)) ** 2
    cases = []
    for lr in (1e-4, 1e-6):
        cases += [StepCase("manual", {"lr": lr}, p, g, dtype=dtype),
                  StepCase("SGD", {"lr": lr}, p, g, dtype=dtype),
                  StepCase("SGD", {"lr": lr, "momentum": 0.9}, p, g, dtype=dtype),
                  StepCase("SGD", {"lr": lr, "momentum": 0.9}, p, g, {"momentum_buffer": b}, dtype)]
    cases += [StepCase("Adam", {"lr": 1e-4}, p, g, dtype=dtype),
              StepCase("Adam", {"lr": 1e-4}, p, g, {"step": 9, "exp_avg": m, "exp_avg_sq": v}, dtype),
              StepCase("RMSprop", {"lr": 1e-3}, p, g, dtype=dtype),
              StepCase("RMSprop", {"lr": 1e-3}, p, g, {"step": 9, "square_avg": v}, dtype)]
    return cases


def _optimizer_check(name: str) -> Callable[[str, str], list[str]]:
    def check(device: str, dtype: str) -> list[str]:
        from .optimizers import step_problems

        return [p for case in _step_cases(dtype) if case.optimizer == name for p in step_problems(case, device)]
    return check


def _mse_check(device: str, dtype: str) -> list[str]:
    from .functions import mse_sum_problems

    return mse_sum_problems(_values(6, (64, 10)), _values(7, (64, 10)), dtype, device)


def _cross_entropy_check(device: str, dtype: str) -> list[str]:
    from .functions import cross_entropy_problems

    target = np.random.default_rng(9).integers(0, 10, 64)
    return cross_entropy_problems(_values(8, (64, 10), 3.0), target, dtype, device)


def _flatten_check(device: str, dtype: str) -> list[str]:
    from .functions import flatten_problems

    return flatten_problems(_values(10, (50,)), dtype)


def _init_check(device: str, dtype: str) -> list[str]:
    from .functions import linear_init_problems

    return [p for fan_in, fan_out in ((1000, 100), (100, 10), (3, 1), (784, 512)) for p in
            linear_init_problems(fan_in, fan_out, seed=0)]


def _loader_check(device: str, dtype: str) -> list[str]:
    from ...mnist.data import load_datasets
    from .data import loader_problems

    train, _ = load_datasets("")
    return loader_problems(train, 64)


def _save_load_check(device: str, dtype: str) -> list[str]:
    import torch

    from .data import save_load_problems

    state = {"0.weight": torch.arange(12, dtype=getattr(torch, dtype)).reshape(3, 4) / 7,
             "0.bias": torch.zeros(3, dtype=getattr(torch, dtype)), "steps": torch.tensor([3])}
    return save_load_problems(state)


def _streams_check(device: str, dtype: str) -> list[str]:
    from .data import stream_problems

    return stream_problems(recorded_streams())


@dataclass(frozen=True)
class FixedCheck:
    """A building block checked on fixed inputs: problems(device, dtype) -> what differs."""

    block: str
    label: str
    problems: Callable[[str, str], list[str]]
    dtype_free: bool = False  # the same in every dtype: checked once


FIXED = (
    FixedCheck("sgd-step", "one SGD step is the documented one", _optimizer_check("SGD")),
    FixedCheck("adam-step", "one Adam step is the documented one", _optimizer_check("Adam")),
    FixedCheck("rmsprop-step", "one RMSprop step is the documented one", _optimizer_check("RMSprop")),
    FixedCheck("manual-step", "p -= lr * p.grad bit for bit", _optimizer_check("manual")),
    FixedCheck("mse-sum", "MSELoss(reduction='sum') is sum (x - y)^2", _mse_check),
    FixedCheck("cross-entropy", "CrossEntropyLoss is the mean of logsumexp(z) - z[y]", _cross_entropy_check),
    FixedCheck("flatten", "Flatten(0, 1) keeps the values and their order", _flatten_check),
    FixedCheck("linear-init", "nn.Linear's init is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bit for bit", _init_check,
               dtype_free=True),
    FixedCheck("mnist-loader", "the DataLoader's batches and order (no shuffle, last batch kept)", _loader_check,
               dtype_free=True),
    FixedCheck("save-load", "torch.save / torch.load round trip bit for bit", _save_load_check),
    FixedCheck("seeded-streams", "the seeded streams draw their recorded fingerprints", _streams_check,
               dtype_free=True),
)


def variants_using(block: str) -> tuple[str, ...]:
    return blocks()[block].variants if block in blocks() else ()


def failing(variant: str, device: str = "cpu", dtype: str = "float32") -> list[str]:
    """The building blocks `variant` uses that fail on fixed inputs here, each with what differs:
    what a golden failure names first (a changed block explains the trajectory)."""
    used = set(blocks_of(variant))
    return [f"building block {fixed.block} fails (look here first): {'; '.join(problems[:2])}"
            for fixed in FIXED if fixed.block in used
            for problems in [fixed.problems(device, dtype)] if problems]
