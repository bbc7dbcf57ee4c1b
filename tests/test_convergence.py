"""Convergence properties: every mlp and poly variant meets the claims of its [claims] table in
specs/variants/<id>.toml for every seed Hypothesis draws from the table's seed_range, at the
tutorial's own dtype.

Claims a [claims] table may make (each one a bound measured over many seeds with
benchmarks/measure_convergence.py, with a margin; the command and the figures are in `measured`):

  final_loss_below           the loss at the last step is below this
  final_over_optimum_below   poly: the last loss over the least-squares optimum of the cubic on the
                             same grid (reference/poly_optimum.py: np.linalg.lstsq) is below this
  lowest_loss_below          the smallest loss of the run is below this (for a variant whose last
                             loss is erratic, such as mlp.dynamic: it gets the claim it satisfies)
  seed_range                 [first, last]: the seeds the measurement covered, every one of them; the
                             test draws from these. (The final losses of the MLPs have heavy tails:
                             one seed in ~600 ends 20-50x above the next worst, so a bound claimed for
                             every 32-bit seed would be a guess; over the measured range it is a fact
                             with a margin, and no drawn seed can be flaky.)
  worst_seed                 the worst seed of the measurement: always checked, besides the drawn ones
  note                       free text (not checked)

and every variant's loss stays finite (no nan, no inf) at every step.

Each example is one full-length run (0.3-2.5 s at one thread; the session's shared run, cached_run): two seeds per variant in the ci
and dev profiles (max_examples 25), more under thorough (500 -> 25). poly.dynamic (30000 steps,
~10 s a run) is marked slow.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import reference
from reference.poly_optimum import least_squares_optimum

pytestmark = [pytest.mark.property, pytest.mark.usefixtures("one_thread")]

KNOWN_CLAIMS = {
    "final_loss_below", "final_over_optimum_below", "lowest_loss_below", "seed_range", "worst_seed", "measured", "note",
    "loss_decrease_window",  # checked by tests/test_contract.py
}
NOT_CLAIMS = {"seed_range", "worst_seed", "measured", "note", "loss_decrease_window"}
EXAMPLES = max(2, settings().max_examples // 20)
# No shrinking: each shrink step is another full-length run, and a failing seed is already
# reported as it is.
NO_SHRINK = [phase for phase in settings().phases if phase is not Phase.shrink]
SLOW = {"poly.dynamic"}


FAMILIES = ("mlp", "poly")  # the MNIST classifier's claims are checked by its own tests


def variant_params() -> list:
    return [
        pytest.param(vid, id=vid, marks=[pytest.mark.slow] if vid in SLOW else [])
        for vid, variant in reference.VARIANTS.items()
        if variant.family in FAMILIES
    ]


def assert_meets_claims(vid: str, seed: int, run_variant) -> None:
    variant = reference.VARIANTS[vid]
    claims = dict(variant.claims)
    unknown = set(claims) - KNOWN_CLAIMS
    assert not unknown, f"{variant.spec_path}: [claims] has keys no test checks: {sorted(unknown)}"
    assert set(claims) - NOT_CLAIMS, f"{variant.spec_path}: [claims] states no claim"

    run = run_variant(vid, seed=seed, threads=1)
    losses = np.asarray(run.losses, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(losses))
    assert bad.size == 0, f"{vid} seed {seed}: loss is {losses[bad[0]]} at step {bad[0]}"

    final = losses[-1]
    if "final_loss_below" in claims:
        bound = claims["final_loss_below"]
        assert final < bound, f"{vid} seed {seed}: final loss {final:.4g}, claimed below {bound:g}"
    if "final_over_optimum_below" in claims:
        optimum = least_squares_optimum(int(run.hyperparameters["points"]))
        bound = claims["final_over_optimum_below"]
        assert final / optimum < bound, (
            f"{vid} seed {seed}: final loss {final:.6g} is {final / optimum:.4g} x the least-squares "
            f"optimum {optimum:.6g}, claimed below {bound:g} x"
        )
    if "lowest_loss_below" in claims:
        bound = claims["lowest_loss_below"]
        assert losses.min() < bound, f"{vid} seed {seed}: lowest loss {losses.min():.4g}, claimed below {bound:g}"


def seed_range(vid: str) -> st.SearchStrategy[int]:
    variant = reference.VARIANTS[vid]
    first, last = variant.claims.get("seed_range", (None, None))
    assert first is not None, f"{variant.spec_path}: [claims] gives no seed_range"
    return st.integers(int(first), int(last))


@pytest.mark.parametrize("vid", variant_params())
@settings(max_examples=EXAMPLES, phases=NO_SHRINK)
@given(data=st.data())
def test_variant_meets_its_convergence_claims_for_every_drawn_seed(vid, data, cached_run):
    assert_meets_claims(vid, data.draw(seed_range(vid), label="seed"), cached_run)


@pytest.mark.parametrize("vid", variant_params())
def test_variant_meets_its_convergence_claims_at_its_worst_measured_seed(vid, cached_run):
    seed = reference.VARIANTS[vid].claims.get("worst_seed")
    assert seed is not None, f"{reference.VARIANTS[vid].spec_path}: [claims] names no worst_seed"
    assert_meets_claims(vid, int(seed), cached_run)


def test_least_squares_optimum_is_the_known_one():
    """The closed form the poly claims divide by: loss 8.8172 on the 2000-point grid (DESIGN.md)."""
    assert round(least_squares_optimum(2000), 4) == 8.8172
