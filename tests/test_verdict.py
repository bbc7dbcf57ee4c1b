"""One judgement, one vocabulary (reference/judge: status, checks, verdict): every status reachable and
named the same everywhere; a check that cannot be applied is listed as not applied, never failed;
exit statuses mean the same for every command."""
from __future__ import annotations

import numpy as np
import pytest

from reference.judge import goldens
from reference.judge.checks import SHADOW_REMEDY
from reference.judge.goldens import GoldenKey
from reference.judge.rules import rule_for
from reference.judge.status import Status, exit_status, legend
from reference.judge.verdict import judge

KEY = GoldenKey("mlp.tensor", "float32", 0)


@pytest.fixture(scope="module")
def gold():
    return goldens.read(KEY), goldens.read(GoldenKey(KEY.variant, "float64", 0))


def _drifted(losses, rel: float, from_step: int) -> list[float]:
    """A benign-looking drift: a relative difference that appears late and stays small."""
    return [x * (1 + rel) if t >= from_step else x for t, x in enumerate(losses)]


def test_a_float32_pair_without_a_float64_partner_is_close_with_the_shadow_check_not_applied(gold):
    """Reproducer: `compare` of two float32-only recordings called benign drift DIVERGED because the
    shadow check had no float64 run to measure against."""
    g32, _ = gold
    now = _drifted(g32["losses"], 1e-3, rule_for(KEY.variant, KEY.dtype).horizon + 5)
    verdict = judge(KEY.variant, KEY.dtype, now, g32["losses"])
    assert verdict.status is Status.CLOSE, verdict.summary()
    (shadow,) = [f for f in verdict.findings if f.check == "shadow"]
    assert not shadow.applied and shadow.ok and shadow.remedy == SHADOW_REMEDY
    assert "not applied: shadow (no float64 run of the same start" in verdict.summary()
    assert "shadow: not applied: no float64 run of the same start" in "\n".join(verdict.checks_lines())


def test_with_its_float64_partner_the_same_pair_applies_the_shadow_check(gold):
    g32, g64 = gold
    now = _drifted(g32["losses"], 1e-3, rule_for(KEY.variant, KEY.dtype).horizon + 5)
    verdict = judge(KEY.variant, KEY.dtype, now, g32["losses"], reference64=g64["losses"])
    (shadow,) = [f for f in verdict.findings if f.check == "shadow"]
    assert shadow.applied and verdict.shadow is not None


def test_every_status_is_reachable_and_its_cell_says_so(gold):
    g32, _ = gold
    losses = g32["losses"]
    assert judge(KEY.variant, KEY.dtype, losses, losses).cell_text() == "exact"
    close = judge(KEY.variant, KEY.dtype, _drifted(losses, 1e-6, 1), losses)
    assert close.status is Status.CLOSE and close.cell_text() == "close 1.0e-06"
    diverged = judge(KEY.variant, KEY.dtype, _drifted(losses, 1e-2, 3), losses)
    assert diverged.status is Status.DIVERGED and diverged.cell_text().startswith("DIVERGED @3 ")
    shorter = judge(KEY.variant, KEY.dtype, losses[:-1], losses)
    assert shorter.status is Status.NOT_COMPARABLE and "499 steps recorded, the reference has 500" in shorter.reason
    no_row = judge("no.such", "float32", [2.0, 1.0], [2.0, 1.5])
    assert no_row.status is Status.NOT_COMPARABLE and "has no row for no.such float32" in no_row.reason
    assert not shorter.ok and not no_row.ok  # nothing judged is never a pass


def test_equal_losses_with_other_final_parameters_are_close_params_not_exact():
    record = {"w": [1.0, 2.0]}
    verdict = judge("poly.tensor", "float64", [3.0, 2.0], [3.0, 2.0], now_params={"w": [1.0, 2.0 + 1e-15]},
                    reference_params=record)
    assert verdict.status is Status.CLOSE and verdict.cell_text() == "close (params)"
    digests_only = judge("poly.tensor", "float64", [3.0, 2.0], [3.0, 2.0], params_equal=False)
    assert digests_only.status is Status.CLOSE
    assert [f.check for f in digests_only.not_applied] == ["params"]


def test_a_diverged_verdict_names_the_check_its_step_and_its_size(gold):
    g32, _ = gold
    verdict = judge(KEY.variant, KEY.dtype, _drifted(g32["losses"], 1e-2, 3), g32["losses"])
    (failed,) = verdict.failed
    assert failed.check == "bands" and failed.step == 3 and failed.ratio >= 1
    assert verdict.first_bad_step == 3 and verdict.worst_ratio >= 1


def test_exit_statuses_mean_the_same_for_every_command():
    E, C, D, N = Status.EXACT, Status.CLOSE, Status.DIVERGED, Status.NOT_COMPARABLE
    assert exit_status([E, C]) == 0
    assert exit_status([E, D, N]) == 1
    assert exit_status([N, N]) == 2 and exit_status([]) == 2  # nothing judged is never 0
    assert exit_status([E], errors=True) == 2


def test_the_legend_explains_every_word_a_cell_can_hold():
    text = "\n".join(legend())
    for word in [*(str(s) for s in Status), "close (params)", "baseline", "DIVERGED @step"]:
        assert word in text, word


def test_the_nan_loss_of_a_run_whose_reference_is_finite_is_beyond_the_policy():
    losses = list(np.linspace(10.0, 1.0, 20))
    now = [*losses[:5], float("nan"), *losses[6:]]
    verdict = judge("poly.tensor", "float64", now, losses)
    assert verdict.status is Status.DIVERGED and verdict.first_bad_step == 5
