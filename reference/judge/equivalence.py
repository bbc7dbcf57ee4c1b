"""Pairs of variants that compute the same thing (specs/equivalences.toml): how to run a pair and
how to judge it. tests/test_equivalences.py asserts every row; benchmarks/measure_equivalence.py
measures the figures behind them with the same runs."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import torch

from ..catalogue import load_toml, load_variants
from ..facts import fact
from ..harness.running import draw_start, execute, run as harness_run
from ..harness.planning import plan
from ..harness.trajectory import Trajectory
from ..tolerances import Tolerance
from .verdict import judge

FILE = "equivalences.toml"
WHAT = ("losses", "final_loss", "params")  # what a row may compare, in this order
STARTS = ("seed", "numpy float64")
SEEDS = ("golden", "drawn")


@dataclass(frozen=True)
class Equivalence:
    a: str
    b: str
    start: str
    seeds: str
    why: str
    tolerances: Mapping[str, Mapping[str, Tolerance]]  # what -> dtype -> (rtol, atol)
    bitwise_requires: str | None = None

    @property
    def id(self) -> str:
        return f"{self.a}=={self.b}"

    @property
    def dtypes(self) -> list[str]:
        return sorted({dtype for per_dtype in self.tolerances.values() for dtype in per_dtype})


@cache
def _table() -> dict[str, Any]:
    return load_toml(FILE)


def seed_range() -> tuple[int, int]:
    low, high = _table()["seed_range"]
    return int(low), int(high)


@cache
def equivalences() -> tuple[Equivalence, ...]:
    variants = load_variants()
    rows = []
    for raw in _table()["equivalence"]:
        where = f"specs/{FILE} row {raw.get('a')}=={raw.get('b')}"
        for name in ("a", "b"):
            if raw.get(name) not in variants:
                raise ValueError(f"{where}: {name} = {raw.get(name)!r} is not a variant. Valid choices: {', '.join(variants)}")
        if raw.get("start") not in STARTS or raw.get("seeds") not in SEEDS:
            raise ValueError(f"{where}: start must be one of {STARTS}, seeds one of {SEEDS}")
        tolerances = {what: {dtype: Tolerance.of(pair) for dtype, pair in raw[what].items()}
                      for what in WHAT if what in raw}
        if not tolerances:
            raise ValueError(f"{where}: compares nothing. Valid choices: {', '.join(WHAT)}")
        rows.append(Equivalence(raw["a"], raw["b"], raw["start"], raw["seeds"], raw.get("why", ""),
                                tolerances, raw.get("bitwise_requires")))
    return tuple(rows)


Runner = Callable[..., Trajectory]


def run_pair(row: Equivalence, seed: int, dtype: str, *, device: str = "cpu", runner: Runner | None = None,
             threads: int = 1) -> tuple[Trajectory, Trajectory]:
    """Both runs of the row from its start: (a, b). runner: reference.run or a memoised stand-in
    (the gate's cached_run) for the runs made from a seed."""
    run = runner or harness_run
    if row.start == "seed":
        return (run(row.a, seed=seed, dtype=dtype, device=device, threads=threads),
                run(row.b, seed=seed, dtype=dtype, device=device, threads=threads))
    # the NumPy program's own float64 draw (the one its run from the seed makes), given to its
    # torch translation too
    start = draw_start(plan(row.b, seed=seed, dtype="float64", threads=threads))
    as_torch = {k: torch.as_tensor(np.array(v, dtype=np.float64)) for k, v in start.items()}
    return (execute(plan(row.a, seed=seed, dtype="float64", device=device, threads=threads), start=as_torch),
            run(row.b, seed=seed, dtype="float64", threads=threads))


def compared(what: str, a: Trajectory, b: Trajectory) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, a's values, b's values) for each thing `what` compares; parameters pair up in order
    (nn.Sequential numbers its layers 0 and 2 where TwoLayerNet names them linear1 and linear2)."""
    if what == "losses":
        return [("loss at every step", np.asarray(a.losses), np.asarray(b.losses))]
    if what == "final_loss":
        return [("final loss", np.asarray(a.losses[-1:]), np.asarray(b.losses[-1:]))]
    pairs = zip(a.params.items(), b.params.items(), strict=True)
    return [(f"final {na} vs {nb}", pa.double().numpy(), pb.double().numpy()) for (na, pa), (nb, pb) in pairs]


def problems(row: Equivalence, dtype: str, a: Trajectory, b: Trajectory, *,
             runner: Runner | None = None) -> list[str]:
    """What breaks the row's claim for these two runs (empty: it holds). Where this torch breaks the
    fact a bit-for-bit row rests on, its float32 runs are judged by the golden policy instead, against
    b's float64 run of the same seed, which runner makes (as run_pair's). See Note [clamp gradient at 0]."""
    out = []
    if row.start == "seed" and a.losses[0] != b.losses[0]:
        out.append(f"not the same start: first losses {a.losses[0]!r} and {b.losses[0]!r}")
    if row.bitwise_requires and dtype == "float32" and fact(row.bitwise_requires) != 1.0:
        b64 = (runner or harness_run)(row.b, seed=b.seed, dtype="float64", steps=b.steps, threads=b.threads)
        verdict = judge(row.a, dtype, a.losses, b.losses, reference64=b64.losses)
        return out + ([] if verdict.ok else [verdict.summary()])
    for what, per_dtype in row.tolerances.items():
        tol = per_dtype[dtype]
        for label, x, y in compared(what, a, b):
            if x.shape != y.shape:
                out.append(f"{label}: shapes {x.shape} and {y.shape}")
                continue
            error = np.abs(x - y)
            bad = ~(error <= tol.allowed(y))
            if bad.any():
                i = np.unravel_index(np.argmax(np.where(bad, error - tol.allowed(y), -np.inf)), bad.shape)
                rule = "bit for bit" if tol.exact else f"atol + rtol * |{row.b}| {tol}"
                out.append(f"{label}: {int(bad.sum())} of {bad.size} values differ beyond {rule}; "
                           f"worst at {tuple(map(int, i))}: {x[i]!r} vs {y[i]!r}")
    return out


SMALL = 1e-3  # |b| at or below it: the relative difference of a tiny value says little (not a drift)


class Differences(NamedTuple):
    """The figures a tolerance rests on (maxima over the values compared)."""

    absolute: float  # max |a - b|
    absolute_small: float  # max |a - b| over |b| <= SMALL
    relative_big: float  # max |a - b| / |b| over |b| > SMALL
    relative: float  # max |a - b| / |b| over every value (inf where b = 0 and a is not)


def largest_differences(row: Equivalence, a: Trajectory, b: Trajectory) -> dict[str, Differences]:
    """what -> its Differences."""
    out = {}
    for what in row.tolerances:
        worst = np.zeros(len(Differences._fields))
        for _, x, y in compared(what, a, b):
            diff, scale = np.abs(x - y), np.abs(y)
            small = scale <= SMALL
            with np.errstate(divide="ignore", invalid="ignore"):
                relative = np.where(diff == 0, 0.0, diff / scale)
            figures = [np.max(diff, initial=0.0), np.max(diff[small], initial=0.0),
                       np.max(relative[~small], initial=0.0), np.max(relative, initial=0.0)]
            worst = np.maximum(worst, figures)
        out[what] = Differences(*map(float, worst))
    return out
