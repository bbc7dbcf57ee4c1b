"""One Verdict per judged pair of trajectories: judge(...) runs the checks of the pair's calibrated row
and gives one status (See Note [one status, four words]), the checks it applied, those it could not
apply and why, and the numbers every report shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .checks import (Finding, check_bands, check_finite, check_params, check_shadow, check_tail,
                     first_difference, param_values, relative_error)
from .rules import PolicyError, Rule, rule_for
from .status import Status


@dataclass(frozen=True)
class Verdict:
    status: Status
    variant: str
    dtype: str
    device: str
    rule: str = ""  # which calibrated row judged (Rule.name); "" when none did
    findings: tuple[Finding, ...] = ()
    max_rel_error: float = 0.0
    max_rel_error_step: int = 0
    first_difference: int | None = None  # the first loss not bitwise equal (None: every loss equal)
    reason: str = ""  # not comparable: why; close / exact: a note (e.g. only the parameters differ)

    @property
    def ok(self) -> bool:
        """Nothing beyond the policy (not comparable is not ok: nothing was judged)."""
        return self.status in (Status.EXACT, Status.CLOSE)

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.applied and not f.ok]

    @property
    def not_applied(self) -> list[Finding]:
        return [f for f in self.findings if not f.applied]

    @property
    def reasons(self) -> list[str]:
        return [f.text for f in self.failed]

    @property
    def first_bad_step(self) -> int | None:
        steps = [f.step for f in self.failed if f.step is not None]
        return min(steps) if steps else None

    @property
    def worst_ratio(self) -> float:
        """The largest deviation / tolerance over every check applied (>= 1: diverged)."""
        return max((f.ratio for f in self.findings if f.applied), default=0.0)

    @property
    def shadow(self) -> tuple[float, float, float] | None:
        """(run distance, reference distance, allowed) from float64, where the shadow check applied."""
        return next((f.values for f in self.findings if f.check == "shadow" and f.values), None)

    def cell_text(self) -> str:
        """What a matrix cell shows (See Note [one status, four words])."""
        if self.status is Status.EXACT:
            return "exact"
        if self.status is Status.NOT_COMPARABLE:
            return "not comparable"
        if self.status is Status.CLOSE:
            return f"close {self.max_rel_error:.1e}" if self.max_rel_error > 0 else "close (params)"
        step = "-" if self.first_bad_step is None else str(self.first_bad_step)
        return f"DIVERGED @{step} {self.max_rel_error:.1e}"

    def summary(self) -> str:
        where = f"{self.variant} {self.device} {self.dtype}"
        if self.status is Status.EXACT:
            return f"{where}: exact (bitwise)"
        if self.status is Status.NOT_COMPARABLE:
            return f"{where}: not comparable: {self.reason}"
        if self.max_rel_error == 0 and self.first_difference is None:
            text = f"{where}: {self.status}, losses bitwise equal, final parameters not"
        else:
            text = (f"{where}: {self.status}, max relative error {self.max_rel_error:.3g} at step "
                    f"{self.max_rel_error_step}, {self.worst_ratio:.2g} x its tolerance")
        if self.shadow is not None:
            run_d, ref_d, allowed = self.shadow
            text += f"; distance from float64 {run_d:.3g} (reference's {ref_d:.3g}, allowed {allowed:.3g})"
        if self.reasons:
            text += "; " + "; ".join(self.reasons)
        if self.not_applied:
            text += "; not applied: " + "; ".join(f"{f.check} ({f.text})" for f in self.not_applied)
        return text

    def checks_lines(self) -> list[str]:
        """One line per check of the row: applied (and its result) or not (and why)."""
        return [f.line() for f in self.findings]


def judge(variant: str, dtype: str, now: Sequence[float], reference: Sequence[float], *, device: str = "cpu",
          reference64: Sequence[float] | None = None, now_params: Mapping[str, Any] | None = None,
          reference_params: Mapping[str, Any] | None = None, params_equal: bool | None = None,
          rule: Rule | None = None) -> Verdict:
    """Judge `now` against `reference` (same variant, dtype, seed, steps, start) under the policy.

    reference64: the float64 run of the same start (the float32 / CUDA shadow check); now_params /
    reference_params: final-parameter records (params_record); params_equal: whether the final
    parameters are bitwise equal when only digests tell (results files); rule: the row to apply
    (default: the calibrated row of variant, dtype and device; the calibration passes its own).
    """
    a = np.asarray(now, dtype=np.float64)
    g = np.asarray(reference, dtype=np.float64)
    if a.shape != g.shape:
        return Verdict(Status.NOT_COMPARABLE, variant, dtype, device,
                       reason=f"{len(a)} steps recorded, the reference has {len(g)}")
    if params_equal is None and now_params and reference_params:
        params_equal = param_values(now_params) == param_values(reference_params)
    first = first_difference(a, g)
    if first is None and params_equal is not False:
        note = "" if params_equal else "final parameters not recorded on both sides"
        return Verdict(Status.EXACT, variant, dtype, device, reason=note)
    try:
        rule = rule or rule_for(variant, dtype, device)
    except PolicyError as exc:
        return Verdict(Status.NOT_COMPARABLE, variant, dtype, device, first_difference=first, reason=str(exc))
    err = relative_error(a, g)
    err = np.where(np.isnan(err), np.inf, err)
    worst = int(np.argmax(err))
    findings = [check_bands(a, g, rule), check_tail(a, g, rule), check_shadow(a, g, reference64, rule),
                check_params(now_params, reference_params, rule), check_finite(a, g)]
    findings = tuple(f for f in findings if f is not None)
    beyond = any(f.applied and not f.ok for f in findings)
    note = ""
    if first is None:
        note = "losses bitwise equal, final parameters differ"
    return Verdict(Status.DIVERGED if beyond else Status.CLOSE, variant, dtype, device, rule.name, findings,
                   float(err[worst]), worst, first, note)

