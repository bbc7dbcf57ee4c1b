"""The policy's checks, each a small function returning a Finding: applied or not (and why not), passed
or not, how close to its tolerance (ratio: deviation / allowed; >= 1 is beyond), and from which step.

    bands   steps up to the row's horizon, each within its band's (rtol, atol)
    tail    after the horizon: the mean log loss of each tail segment
    shadow  float32 / CUDA: the distance from the float64 trajectory of the same start
    params  the final parameters' records
    finite  a loss that is not finite where the reference's is

reference/judge/verdict.py combines them into one Verdict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .rules import Rule

TINY = np.finfo(np.float64).tiny


@dataclass(frozen=True)
class Finding:
    check: str  # bands | tail | shadow | params | finite
    applied: bool
    ok: bool = True
    ratio: float = 0.0  # largest deviation / allowed over the check (>= 1: beyond the policy)
    step: int | None = None  # the first step outside, where the check is per step
    text: str = ""  # what it found; not applied: why not
    remedy: str = ""  # not applied: what would make it applicable
    values: tuple[float, ...] = ()  # shadow: (run distance, reference distance, allowed)

    def line(self) -> str:
        if not self.applied:
            return f"{self.check}: not applied: {self.text}" + (f" ({self.remedy})" if self.remedy else "")
        return f"{self.check}: {'ok' if self.ok else 'beyond the policy'}, {self.ratio:.3g} x its tolerance" + (
            f"; {self.text}" if self.text and not self.ok else "")


def not_applied(check: str, why: str, remedy: str = "") -> Finding:
    return Finding(check, applied=False, text=why, remedy=remedy)


def relative_error(now: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(now - ref) / np.maximum(np.abs(ref), TINY)


def first_difference(now: Sequence[float], base: Sequence[float]) -> int | None:
    """The first step whose loss is not bitwise equal (NaN equals NaN), or None."""
    a, b = np.asarray(now, dtype=np.float64), np.asarray(base, dtype=np.float64)
    n = min(len(a), len(b))
    differs = np.flatnonzero(~((a[:n] == b[:n]) | (np.isnan(a[:n]) & np.isnan(b[:n]))))
    return int(differs[0]) if differs.size else (n if len(a) != len(b) else None)


def _ratio(deviation: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(allowed > 0, deviation / allowed, np.where(deviation > 0, np.inf, 0.0))
    return np.where(np.isnan(ratio), np.inf, ratio)


def check_bands(now: np.ndarray, ref: np.ndarray, rule: Rule) -> Finding:
    worst, n = 0.0, len(now)
    err = relative_error(now, ref)
    for band in rule.bands:
        lo, hi = band.start, min(band.stop, n)
        if lo >= hi:
            continue
        allowed = band.tolerance.allowed(ref[lo:hi])
        deviation = np.abs(now[lo:hi] - ref[lo:hi])
        ratio = _ratio(deviation, allowed)
        worst = max(worst, float(ratio.max()))
        bad = np.flatnonzero(~(deviation <= allowed))
        if bad.size:
            t = lo + int(bad[0])
            return Finding("bands", True, False, worst, t,
                           f"steps {lo}..{hi - 1} must be within {band.tolerance}; step {t} is off by "
                           f"{err[t]:.3g} relative ({ratio[bad[0]]:.3g} x the tolerance)")
    return Finding("bands", True, True, worst)


def tail_segments(n: int, horizon: int, segments: int) -> list[tuple[int, int]]:
    """[start, stop) of each tail segment: the steps after the horizon split as evenly as possible."""
    length = n - horizon
    k = max(1, min(segments, length))
    edges = [horizon + (length * i) // k for i in range(k + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def tail_statistics(losses: np.ndarray, horizon: int, segments: int) -> np.ndarray:
    logs = np.log(np.maximum(np.asarray(losses, dtype=np.float64), TINY))
    return np.array([logs[a:b].mean() for a, b in tail_segments(len(logs), horizon, segments)])


def check_tail(now: np.ndarray, ref: np.ndarray, rule: Rule) -> Finding | None:
    """None when the row has no tail or the run ends at the horizon."""
    n = len(now)
    if rule.tail is None or rule.horizon >= n:
        return None
    diff = np.abs(tail_statistics(now, rule.horizon, rule.tail.segments)
                  - tail_statistics(ref, rule.horizon, rule.tail.segments))
    diff = np.where(np.isnan(diff), np.inf, diff)
    ratio = float(diff.max() / rule.tail.atol)
    for (lo, hi), d in zip(tail_segments(n, rule.horizon, rule.tail.segments), diff):
        if not d <= rule.tail.atol:
            return Finding("tail", True, False, ratio, lo,
                           f"tail (after step {rule.horizon}): the mean log loss of steps {lo}..{hi - 1} "
                           f"differs by {d:.3g}, more than the {rule.tail.atol:.3g} benign variation allows")
    return Finding("tail", True, True, ratio)


def shadow_distance(losses: np.ndarray, shadow: np.ndarray) -> float:
    """Mean |log L - log L64| over the steps: scale-free, not dominated by one late spike."""
    a = np.log(np.maximum(losses, TINY))
    b = np.log(np.maximum(shadow, TINY))
    return float(np.mean(np.abs(a - b)))


SHADOW_REMEDY = ("record the float64 run of the same start beside it: `run --all --dtype float64 --out`, "
                 "or `check --out`, which runs both dtypes")


def check_shadow(now: np.ndarray, ref: np.ndarray, ref64: Sequence[float] | None, rule: Rule) -> Finding | None:
    """None when the row has no shadow check (float64 rows)."""
    if rule.shadow_allowance is None:
        return None
    if ref64 is None:
        return not_applied("shadow", "no float64 run of the same start to measure the float32 distance against",
                           SHADOW_REMEDY)
    s = np.asarray(ref64, dtype=np.float64)
    if len(s) < len(now):
        return not_applied("shadow", f"the float64 run has {len(s)} steps, this one {len(now)}", SHADOW_REMEDY)
    s = s[:len(now)]
    run_d, ref_d = shadow_distance(now, s), shadow_distance(ref, s)
    allowed = ref_d + rule.shadow_allowance
    ratio = max(run_d - ref_d, 0.0) / rule.shadow_allowance
    if not run_d <= allowed:
        return Finding("shadow", True, False, ratio, None,
                       f"the run is {run_d:.3g} from the float64 trajectory (mean |log loss| difference), "
                       f"more than the reference float32 run's {ref_d:.3g} + {rule.shadow_allowance:.3g}",
                       values=(run_d, ref_d, allowed))
    return Finding("shadow", True, True, ratio, values=(run_d, ref_d, allowed))


def param_values(record: Mapping[str, Any]) -> dict[str, float]:
    """A final-parameter record as named numbers: 'w1[3]', 'b.sum', 'b.norm'."""
    values: dict[str, float] = {}
    for name, value in record.items():
        if isinstance(value, Mapping):
            values[f"{name}.sum"] = float(value["sum"])
            values[f"{name}.norm"] = float(value["norm"])
        else:
            flat = list(value) if isinstance(value, (list, tuple)) else [value]
            for i, x in enumerate(flat):
                values[name if len(flat) == 1 else f"{name}[{i}]"] = float(x)
    return values


PARAMS_REMEDY = "re-record with this version: results files keep a record of the final parameters"


def check_params(now_params: Mapping[str, Any] | None, ref_params: Mapping[str, Any] | None,
                 rule: Rule) -> Finding | None:
    """None when the row has no parameter tolerance."""
    if rule.params is None:
        return None
    if not now_params or not ref_params:
        side = "either side" if not now_params and not ref_params else ("the run" if not now_params else "the reference")
        return not_applied("params", f"no record of the final parameters for {side}", PARAMS_REMEDY)
    mine, theirs = param_values(now_params), param_values(ref_params)
    if mine.keys() != theirs.keys():
        return Finding("params", True, False, math.inf, None,
                       f"final parameters {sorted(mine)} differ in name from the reference's {sorted(theirs)}")
    tol = rule.params
    worst, offenders = 0.0, []
    for name, ref_value in theirs.items():
        allowed = tol.atol + tol.rtol * abs(ref_value)
        deviation = abs(mine[name] - ref_value)
        ratio = deviation / allowed if allowed > 0 else (math.inf if deviation > 0 else 0.0)
        ratio = math.inf if math.isnan(ratio) else ratio
        worst = max(worst, ratio)
        if not deviation <= allowed:
            offenders.append((ratio, name))
    if offenders:
        ratio, name = max(offenders)
        more = f" ({len(offenders) - 1} more parameters off)" if len(offenders) > 1 else ""
        return Finding("params", True, False, worst, None,
                       f"final parameter {name} is {mine[name]:.10g}, reference {theirs[name]:.10g}: "
                       f"{ratio:.3g} x the tolerance {tol}{more}")
    return Finding("params", True, True, worst)


def check_finite(now: np.ndarray, ref: np.ndarray) -> Finding | None:
    """A failing Finding when the run's loss stops being finite where the reference's is finite."""
    if np.all(np.isfinite(now)) or not np.all(np.isfinite(ref)):
        return None
    step = int(np.flatnonzero(~np.isfinite(now))[0])
    return Finding("finite", True, False, math.inf, step, f"loss is not finite from step {step}")
