"""The comparison policy: is a trajectory the golden one, close to it, or changed?

The rules are in specs/golden_policy.toml; the numbers in specs/golden_tolerances.toml, which
`python benchmarks/calibrate.py --write` derives from an ensemble of benign variation (seeds,
thread counts, CPU kernel paths) and states with the evidence of each row. This module only
applies them, the same way for the golden tests, the CUDA tests, `compare` and the calibration.

  bands    every step up to the variant's horizon within a per-step (rtol, atol): a staircase
           that follows the largest benign deviation measured at that step, times a margin.
  tail     after the horizon (chaotic variants, where one trajectory is no reference for another
           step by step), the mean log-loss over each of a few segments of the tail.
  shadow   float32 and CUDA: the run's distance from the float64 golden must not exceed the
           float32 golden's own by more than a measured allowance.
  params   the final parameters (the golden's record: small tensors whole, large ones as sum and
           norm) within a measured (rtol, atol).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Mapping, Sequence

import numpy as np

from .catalogue import load_toml
from .tolerances import Tolerance

EXACT, CLOSE, FAILED = "exact", "close", "failed"
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


def rule_for(variant_id: str, dtype: str, device: str = "cpu") -> Rule:
    row = _tolerances().get(variant_id, {}).get(dtype)
    if row is None:
        raise PolicyError(
            f"specs/{TOLERANCES_FILE} has no row for {variant_id} {dtype}; measure one with: "
            f"python benchmarks/calibrate.py --variants {variant_id} --write"
        )
    rule = Rule.from_table(variant_id, dtype, "cpu", row)
    if device.startswith("cuda"):
        cuda = _policy()["cuda"]
        rule = Rule(**{**rule.__dict__, "device": device}).widened(float(cuda["widen"]))
        if cuda.get("measured", False):
            rule = Rule(**{**rule.__dict__, "measured": True})
    return rule


def relative_error(now: np.ndarray, ref: np.ndarray) -> np.ndarray:
    scale = np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    return np.abs(now - ref) / scale


def shadow_distance(losses: np.ndarray, shadow: np.ndarray) -> float:
    """Mean |log L - log L64| over the steps: scale-free, not dominated by one late spike."""
    a = np.log(np.maximum(losses, np.finfo(np.float64).tiny))
    b = np.log(np.maximum(shadow, np.finfo(np.float64).tiny))
    return float(np.mean(np.abs(a - b)))


def tail_segments(n: int, horizon: int, segments: int) -> list[tuple[int, int]]:
    """[start, stop) of each tail segment: the steps after the horizon split as evenly as possible."""
    length = n - horizon
    k = max(1, min(segments, length))
    edges = [horizon + (length * i) // k for i in range(k + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def tail_statistics(losses: np.ndarray, horizon: int, segments: int) -> np.ndarray:
    logs = np.log(np.maximum(np.asarray(losses, dtype=np.float64), np.finfo(np.float64).tiny))
    return np.array([logs[a:b].mean() for a, b in tail_segments(len(logs), horizon, segments)])


def param_values(record: Mapping[str, Any]) -> dict[str, float]:
    """A golden's final-parameter record as named numbers: 'w1[3]', 'b.sum', 'b.norm'."""
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


@dataclass
class Verdict:
    status: str  # exact | close | failed
    variant: str
    dtype: str
    device: str
    max_rel_error: float
    max_rel_error_step: int
    first_bad_step: int | None = None
    reasons: list[str] = field(default_factory=list)
    shadow: tuple[float, float, float] | None = None  # (run distance, golden distance, allowed)
    worst_ratio: float = 0.0  # the largest deviation / tolerance over every check (>= 1: failed)

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def summary(self) -> str:
        where = f"{self.variant} {self.device} {self.dtype}"
        if self.status == EXACT:
            return f"{where}: exact (bitwise)"
        text = (f"{where}: {self.status}, max relative error {self.max_rel_error:.3g} at step "
                f"{self.max_rel_error_step}, {self.worst_ratio:.2g} x its tolerance")
        if self.shadow is not None:
            run_d, gold_d, allowed = self.shadow
            text += f"; distance from float64 {run_d:.3g} (golden's {gold_d:.3g}, allowed {allowed:.3g})"
        if self.reasons:
            text += "; " + "; ".join(self.reasons)
        return text


def compare(
    variant_id: str,
    dtype: str,
    now: Sequence[float],
    golden: Sequence[float],
    *,
    device: str = "cpu",
    golden64: Sequence[float] | None = None,
    now_params: Mapping[str, Any] | None = None,
    golden_params: Mapping[str, Any] | None = None,
    rule: Rule | None = None,
) -> Verdict:
    """Judge `now` against `golden` (same variant, dtype, seed, steps) under the policy.

    golden64: the float64 golden of the same start, for the float32 shadow check.
    now_params / golden_params: final-parameter records (reference.golden's format), checked when both
    are given. rule: the row to apply (default: the policy's; the calibration passes its own).
    """
    a = np.asarray(now, dtype=np.float64)
    g = np.asarray(golden, dtype=np.float64)
    if a.shape != g.shape:
        return Verdict(FAILED, variant_id, dtype, device, math.inf, 0, 0,
                       [f"{len(a)} steps recorded, golden has {len(g)}"], worst_ratio=math.inf)
    same_params = now_params is None or golden_params is None or param_values(now_params) == param_values(golden_params)
    if np.array_equal(a, g, equal_nan=True) and same_params:
        return Verdict(EXACT, variant_id, dtype, device, 0.0, 0)
    rule = rule or rule_for(variant_id, dtype, device)
    err = relative_error(a, g)
    err = np.where(np.isnan(err), np.inf, err)
    worst = int(np.argmax(err))
    verdict = Verdict(CLOSE, variant_id, dtype, device, float(err[worst]), worst)

    def flag(step: int | None, reason: str) -> None:
        verdict.reasons.append(reason)
        if step is not None and (verdict.first_bad_step is None or step < verdict.first_bad_step):
            verdict.first_bad_step = step

    n = len(a)
    for band in rule.bands:
        lo, hi = band.start, min(band.stop, n)
        if lo >= hi:
            continue
        allowed = band.tolerance.allowed(g[lo:hi])
        dev = np.abs(a[lo:hi] - g[lo:hi])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(allowed > 0, dev / allowed, np.where(dev > 0, np.inf, 0.0))
        ratio = np.where(np.isnan(ratio), np.inf, ratio)
        verdict.worst_ratio = max(verdict.worst_ratio, float(ratio.max()))
        bad = np.flatnonzero(~(dev <= allowed))
        if bad.size:
            t = lo + int(bad[0])
            flag(t, f"steps {lo}..{hi - 1} must be within {band.tolerance}; step {t} is off by "
                    f"{err[t]:.3g} relative ({ratio[bad[0]]:.3g} x the tolerance)")
            break  # later bands only repeat a difference that has already started
    if rule.tail is not None and rule.horizon < n:
        stats_now = tail_statistics(a, rule.horizon, rule.tail.segments)
        stats_gold = tail_statistics(g, rule.horizon, rule.tail.segments)
        diff = np.abs(stats_now - stats_gold)
        diff = np.where(np.isnan(diff), np.inf, diff)
        verdict.worst_ratio = max(verdict.worst_ratio, float(diff.max() / rule.tail.atol))
        for (lo, hi), d in zip(tail_segments(n, rule.horizon, rule.tail.segments), diff):
            if not d <= rule.tail.atol:
                flag(lo, f"tail (after step {rule.horizon}): the mean log loss of steps {lo}..{hi - 1} "
                         f"differs by {d:.3g}, more than the {rule.tail.atol:.3g} benign variation allows")
                break
    if rule.shadow_allowance is not None:
        if golden64 is None:
            flag(None, "no float64 golden to measure the float32 distance against")
        else:
            s = np.asarray(golden64, dtype=np.float64)[:n]
            run_d, gold_d = shadow_distance(a, s), shadow_distance(g, s)
            allowed = gold_d + rule.shadow_allowance
            verdict.shadow = (run_d, gold_d, allowed)
            verdict.worst_ratio = max(verdict.worst_ratio, max(run_d - gold_d, 0.0) / rule.shadow_allowance)
            if not run_d <= allowed:
                flag(None, f"the run is {run_d:.3g} from the float64 golden (mean |log loss| difference), "
                           f"more than the float32 golden's {gold_d:.3g} + {rule.shadow_allowance:.3g}")
    if rule.params is not None and now_params is not None and golden_params is not None:
        mine, theirs = param_values(now_params), param_values(golden_params)
        if mine.keys() != theirs.keys():
            flag(None, f"final parameters {sorted(mine)} differ in name from the golden's {sorted(theirs)}")
        else:
            for name, gold_value in theirs.items():
                allowed = rule.params.atol + rule.params.rtol * abs(gold_value)
                dev = abs(mine[name] - gold_value)
                ratio = dev / allowed if allowed > 0 else (math.inf if dev > 0 else 0.0)
                verdict.worst_ratio = max(verdict.worst_ratio, ratio if not math.isnan(ratio) else math.inf)
            offenders = [(abs(mine[k] - v) / max(rule.params.atol + rule.params.rtol * abs(v), 1e-300), k)
                         for k, v in theirs.items() if not abs(mine[k] - v) <= rule.params.atol + rule.params.rtol * abs(v)]
            if offenders:
                ratio, name = max(offenders)
                flag(None, f"final parameter {name} is {mine[name]:.10g}, golden {theirs[name]:.10g}: "
                           f"{ratio:.3g} x the tolerance {rule.params}"
                           + (f" ({len(offenders) - 1} more parameters off)" if len(offenders) > 1 else ""))
    if not np.all(np.isfinite(a)) and np.all(np.isfinite(g)):
        step = int(np.flatnonzero(~np.isfinite(a))[0])
        flag(step, f"loss is not finite from step {step}")
    if verdict.reasons:
        verdict.status = FAILED
    return verdict


def checkpoint_table(now: Sequence[float], golden: Sequence[float], *, rows: int = 8,
                     first_bad: int | None = None) -> str:
    """A small text table of golden vs now at evenly spaced steps (and the first bad one)."""
    n = min(len(now), len(golden))
    steps = sorted(set(np.linspace(0, n - 1, rows).astype(int).tolist() + ([first_bad] if first_bad is not None else [])))
    lines = [f"{'step':>7}  {'golden':>14}  {'now':>14}  {'rel. error':>10}"]
    for t in steps:
        rel = abs(now[t] - golden[t]) / max(abs(golden[t]), np.finfo(np.float64).tiny)
        mark = "  <- first outside tolerance" if t == first_bad else ""
        lines.append(f"{t:>7}  {golden[t]:>14.8g}  {now[t]:>14.8g}  {rel:>10.3g}{mark}")
    return "\n".join(lines)


def plot_comparison(path, title: str, curves: Mapping[str, Sequence[float]], reference_name: str) -> bool:
    """PNG: log-loss over steps for each curve, and each curve's relative error to the reference.

    Returns False (and writes nothing) when matplotlib is not installed: the text report stands alone.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ref = np.asarray(curves[reference_name], dtype=np.float64)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for name, losses in curves.items():
        y = np.asarray(losses, dtype=np.float64)
        top.semilogy(np.arange(len(y)), y, label=name, linewidth=1)
        if name != reference_name:
            n = min(len(y), len(ref))
            bottom.semilogy(np.arange(n), np.maximum(relative_error(y[:n], ref[:n]), 1e-18), label=name, linewidth=1)
    top.set_ylabel("loss (log)")
    top.set_title(title)
    top.legend(fontsize=8)
    bottom.set_ylabel(f"relative error vs {reference_name}")
    bottom.set_xlabel("step")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True
