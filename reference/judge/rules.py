"""The calibrated policy's rows: what the policy allows a trajectory, per variant, dtype and device.

The rules are in specs/golden_policy.toml; the numbers in specs/golden_tolerances.toml, which the
calibration (`python -m reference.calibration calibrate --write`) derives from an ensemble of benign
variation (seeds, thread counts, CPU kernel paths) and states with the evidence of each row.
reference/judge/checks.py applies them, the same way for every door.

  bands    every step up to the variant's horizon within a per-step (rtol, atol): a staircase
           that follows the largest benign deviation measured at that step, times a margin.
  tail     after the horizon (chaotic variants, where one trajectory is no reference for another
           step by step), the mean log-loss over each of a few segments of the tail.
  shadow   float32 and CUDA: the run's distance from the float64 trajectory must not exceed the
           reference float32 run's own by more than a measured allowance.
  params   the final parameters (small tensors whole, large ones as sum and norm) within a
           measured (rtol, atol).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Mapping

from ..catalogue import load_toml
from ..tolerances import Tolerance

TOLERANCES_FILE = "golden_tolerances.toml"


class PolicyError(LookupError):
    """The policy has no row for what is being judged."""


@dataclass(frozen=True)
class Band:
    """Steps [start, stop) within `tolerance`."""

    start: int
    stop: int
    tolerance: Tolerance


@dataclass(frozen=True)
class Tail:
    """After the horizon: the mean of log(loss) over each of `segments` equal parts of the tail
    may differ from the golden's by at most `atol` (natural-log units: about a relative error)."""

    segments: int
    atol: float


@dataclass(frozen=True)
class Rule:
    """What the policy says for one variant, dtype and device."""

    variant: str
    dtype: str
    device: str
    bands: tuple[Band, ...]
    tail: Tail | None
    shadow_allowance: float | None  # float32: allowed growth of the distance from float64
    params: Tolerance | None
    measured: bool = True  # False: a row not measured on this kind of device (CUDA until measured)

    @property
    def horizon(self) -> int:
        return self.bands[-1].stop if self.bands else 0

    @classmethod
    def from_table(cls, variant: str, dtype: str, device: str, table: Mapping[str, Any]) -> "Rule":
        bands = tuple(Band(int(b["from"]), int(b["to"]), Tolerance.of(b)) for b in table["bands"])
        for before, after in zip(bands, bands[1:]):
            if before.stop != after.start:
                raise PolicyError(f"{variant} {dtype}: bands must be contiguous ({before} then {after})")
        tail = table.get("tail")
        shadow = table.get("shadow")
        params = table.get("params")
        return cls(
            variant=variant,
            dtype=dtype,
            device=device,
            bands=bands,
            tail=None if tail is None else Tail(int(tail["segments"]), float(tail["atol"])),
            shadow_allowance=None if shadow is None else float(shadow["allowance"]),
            params=None if params is None else Tolerance.of(params),
        )

    def widened(self, factor: float) -> "Rule":
        """Every tolerance times `factor` (an unmeasured device: see [cuda] in golden_policy.toml)."""
        return Rule(
            self.variant, self.dtype, self.device,
            tuple(Band(b.start, b.stop, b.tolerance.scaled(factor)) for b in self.bands),
            None if self.tail is None else Tail(self.tail.segments, self.tail.atol * factor),
            None if self.shadow_allowance is None else self.shadow_allowance * factor,
            None if self.params is None else self.params.scaled(factor),
            measured=False,
        )

    @property
    def name(self) -> str:
        """Which row judged: 'mlp.nn float32' of specs/golden_tolerances.toml (CUDA: widened)."""
        where = f"[{self.variant} {self.dtype}] of specs/{TOLERANCES_FILE}"
        if self.device.startswith("cuda"):
            where += f", widened for {self.device}" + ("" if self.measured else " (not measured on a GPU)")
        return where

    def describe(self) -> str:
        parts = [f"steps {b.start}..{b.stop - 1} {b.tolerance}" for b in self.bands]
        if self.tail is not None:
            parts.append(f"tail after step {self.horizon}: {self.tail.segments} segments' mean log loss "
                         f"within {self.tail.atol:.3g}")
        return "; ".join(parts)


@cache
def _policy() -> dict[str, Any]:
    return load_toml("golden_policy.toml")


@cache
def _tolerances() -> dict[str, Any]:
    return load_toml(TOLERANCES_FILE)


def policy_table() -> dict[str, Any]:
    return _policy()


def golden_steps(variant_id: str, default_steps: int) -> int:
    return int(_policy().get("steps", {}).get(variant_id, default_steps))


def golden_seeds(variant_id: str) -> list[int]:
    p = _policy()
    return list(p.get("seeds", {}).get(variant_id, p["default_seeds"]))


def trace_steps() -> int:
    """How many first steps a golden keeps the op trace of (its companion .trace.json)."""
    return int(_policy()["trace"]["golden_steps"])


def rule_for(variant_id: str, dtype: str, device: str = "cpu") -> Rule:
    row = _tolerances().get(variant_id, {}).get(dtype)
    if row is None:
        raise PolicyError(
            f"specs/{TOLERANCES_FILE} has no row for {variant_id} {dtype}; measure one with: "
            f"python -m reference.calibration calibrate --variants {variant_id} --write"
        )
    rule = Rule.from_table(variant_id, dtype, "cpu", row)
    if device.startswith("cuda"):
        cuda = _policy()["cuda"]
        rule = replace(rule, device=device).widened(float(cuda["widen"]))
        if cuda.get("measured", False):
            rule = replace(rule, measured=True)
    return rule
