"""The comparison policy: is a trajectory the golden one, close to it, or changed?

The numbers live in specs/golden_policy.toml, with the reasoning and the commands that measured
them. This module only applies them, the same way for the golden tests, the CUDA tests and
`python -m reference compare`.

  float64        every step within (rtol, atol) of the golden, up to the variant's horizon
                 (chaotic variants), and within a looser envelope after it.
  float32, CUDA  an early window within a tight (rtol, atol), where float32 drift is still tiny;
                 then the run's distance from the float64 golden must not exceed the float32
                 golden's own distance from it by more than a factor (plus a floor). Chaotic
                 float32 drift moves a run around the float64 trajectory, not away from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Mapping, Sequence

import numpy as np

from .catalogue import load_toml

EXACT, CLOSE, FAILED = "exact", "close", "failed"


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    @classmethod
    def of(cls, table: Mapping[str, Any]) -> "Tolerance":
        return cls(rtol=float(table["rtol"]), atol=float(table["atol"]))

    def allowed(self, reference: np.ndarray) -> np.ndarray:
        return self.atol + self.rtol * np.abs(reference)

    def __str__(self) -> str:
        return f"(rtol={self.rtol:g}, atol={self.atol:g})"


@dataclass(frozen=True)
class Rule:
    """What the policy says for one variant, dtype and device."""

    tolerance: Tolerance
    window: int | None  # steps [0, window) held to `tolerance`; None: every step
    after_window: Tolerance | None  # float64 chaotic envelope after the horizon
    shadow_factor: float | None  # float32/CUDA: allowed distance growth relative to the golden's
    shadow_floor: float


@cache
def _policy() -> dict[str, Any]:
    return load_toml("golden_policy.toml")


def policy_table() -> dict[str, Any]:
    return _policy()


def golden_steps(variant_id: str, default_steps: int) -> int:
    return int(_policy().get("steps", {}).get(variant_id, default_steps))


def golden_seeds(variant_id: str) -> list[int]:
    p = _policy()
    return list(p.get("seeds", {}).get(variant_id, p["default_seeds"]))


def rule_for(variant_id: str, dtype: str, device: str = "cpu") -> Rule:
    p = _policy()
    kind = "cuda" if device.startswith("cuda") else "cpu"
    base = dict(p[dtype])
    base.update(p.get(f"{dtype}_{kind}", {}) if kind == "cuda" else {})
    base.update(p.get("variant", {}).get(variant_id, {}).get(dtype, {}))
    window = base.get("window")
    after = base.get("after_window")
    return Rule(
        tolerance=Tolerance.of(base),
        window=None if window is None else int(window),
        after_window=None if after is None else Tolerance.of(after),
        shadow_factor=base.get("shadow_factor"),
        shadow_floor=float(base.get("shadow_floor", 0.0)),
    )


def relative_error(now: np.ndarray, ref: np.ndarray) -> np.ndarray:
    scale = np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    return np.abs(now - ref) / scale


def shadow_distance(losses: np.ndarray, shadow: np.ndarray) -> float:
    """Mean |log L - log L64| over the steps: scale-free, not dominated by one late spike."""
    a = np.log(np.maximum(losses, np.finfo(np.float64).tiny))
    b = np.log(np.maximum(shadow, np.finfo(np.float64).tiny))
    return float(np.mean(np.abs(a - b)))


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

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def summary(self) -> str:
        where = f"{self.variant} {self.device} {self.dtype}"
        if self.status == EXACT:
            return f"{where}: exact (bitwise)"
        text = f"{where}: {self.status}, max relative error {self.max_rel_error:.3g} at step {self.max_rel_error_step}"
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
) -> Verdict:
    """Judge `now` against `golden` (same variant, dtype, seed, steps) under the policy.

    golden64: the float64 golden of the same start, for the float32 shadow check.
    """
    a = np.asarray(now, dtype=np.float64)
    g = np.asarray(golden, dtype=np.float64)
    if a.shape != g.shape:
        return Verdict(FAILED, variant_id, dtype, device, math.inf, 0, 0,
                       [f"{len(a)} steps recorded, golden has {len(g)}"])
    if np.array_equal(a, g, equal_nan=True):
        return Verdict(EXACT, variant_id, dtype, device, 0.0, 0)
    rule = rule_for(variant_id, dtype, device)
    err = relative_error(a, g)
    err = np.where(np.isnan(err), np.inf, err)
    worst = int(np.argmax(err))
    verdict = Verdict(CLOSE, variant_id, dtype, device, float(err[worst]), worst)

    bad = ~(np.abs(a - g) <= rule.tolerance.allowed(g))  # nan counts as bad
    window = len(a) if rule.window is None else min(rule.window, len(a))
    bad_in_window = np.flatnonzero(bad[:window])
    if bad_in_window.size:
        verdict.first_bad_step = int(bad_in_window[0])
        verdict.reasons.append(
            f"steps 0..{window - 1} must be within {rule.tolerance}; step {bad_in_window[0]} is off by "
            f"{err[bad_in_window[0]]:.3g} relative"
        )
    if rule.after_window is not None and window < len(a):
        tail_bad = ~(np.abs(a[window:] - g[window:]) <= rule.after_window.allowed(g[window:]))
        idx = np.flatnonzero(tail_bad)
        if idx.size:
            step = window + int(idx[0])
            verdict.first_bad_step = step if verdict.first_bad_step is None else verdict.first_bad_step
            verdict.reasons.append(
                f"after step {window} the envelope is {rule.after_window}; step {step} is off by {err[step]:.3g}"
            )
    if rule.shadow_factor is not None:
        if golden64 is None:
            verdict.reasons.append("no float64 golden to measure the float32 distance against")
        else:
            s = np.asarray(golden64, dtype=np.float64)[: len(a)]
            run_d, gold_d = shadow_distance(a, s), shadow_distance(g, s)
            allowed = gold_d * rule.shadow_factor + rule.shadow_floor
            verdict.shadow = (run_d, gold_d, allowed)
            if not run_d <= allowed:
                verdict.reasons.append(
                    f"the run is {run_d:.3g} from the float64 golden (mean |log loss| difference), "
                    f"more than {rule.shadow_factor:g} x the float32 golden's {gold_d:.3g} + {rule.shadow_floor:g}"
                )
    if not np.all(np.isfinite(a)) and np.all(np.isfinite(g)):
        step = int(np.flatnonzero(~np.isfinite(a))[0])
        verdict.reasons.append(f"loss is not finite from step {step}")
        verdict.first_bad_step = step if verdict.first_bad_step is None else min(verdict.first_bad_step, step)
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
