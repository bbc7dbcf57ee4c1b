"""Pairs of variants that compute the same thing: every row of specs/equivalences.toml, within its
(rtol, atol) pairs.

- "golden" rows: on the golden seed, with the full-length runs the gate makes anyway (cached_run);
- "drawn" rows: on seeds drawn by Hypothesis from the measured seed_range (a few per run; more under
  the thorough profile), each example two full-length runs (shared through cached_run, except the
  torch translation given the NumPy program's start).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import reference
from reference.judge import equivalence
from reference.judge.equivalence import Equivalence, equivalences, problems, run_pair, seed_range

pytestmark = pytest.mark.property

GOLDEN_ROWS = [row for row in equivalences() if row.seeds == "golden"]
SEEDED_ROWS = [row for row in equivalences() if row.seeds == "drawn" and row.start == "seed"]
NUMPY_ROWS = [row for row in equivalences() if row.seeds == "drawn" and row.start == "numpy float64"]

SEEDS = st.integers(*seed_range())
# Each example costs two full-length runs (~1-3 s): a few seeds in the ci/dev profiles (25
# examples), more under thorough (500 -> 25).
EXAMPLES = max(2, settings().max_examples // 20)
# No shrinking: each shrink step is another full-length run, and a failing seed is already
# reported as it is.
NO_SHRINK = [phase for phase in settings().phases if phase is not Phase.shrink]


def assert_equivalent(row: Equivalence, dtype: str, seed: int, runner, device: str = "cpu") -> None:
    a, b = run_pair(row, seed, dtype, device=device, runner=runner)
    found = problems(row, dtype, a, b, runner=runner)
    assert not found, f"{row.id} ({dtype}, seed {seed}; {row.why}):\n  " + "\n  ".join(found)


def _ids(rows: list[Equivalence]) -> list[str]:
    return [row.id for row in rows]


@pytest.mark.parametrize("row", GOLDEN_ROWS, ids=_ids(GOLDEN_ROWS))
def test_equivalent_variants_agree_on_the_golden_seed(row, dtype, cached_run):
    if dtype not in row.dtypes:
        pytest.skip(f"{row.id} claims nothing in {dtype}")
    assert_equivalent(row, dtype, 0, cached_run)


@pytest.mark.parametrize("row", SEEDED_ROWS, ids=_ids(SEEDED_ROWS))
@settings(max_examples=EXAMPLES, phases=NO_SHRINK)
@given(seed=SEEDS)
def test_equivalent_variants_agree_from_the_same_seed(row, device, dtype, seed, cached_run):
    assert_equivalent(row, dtype, seed, cached_run, device)


@pytest.mark.parametrize("row", NUMPY_ROWS, ids=_ids(NUMPY_ROWS))
@settings(max_examples=EXAMPLES, phases=NO_SHRINK)
@given(seed=SEEDS)
def test_numpy_and_torch_variants_agree_in_float64_from_the_same_start(row, seed, cached_run):
    assert_equivalent(row, "float64", seed, cached_run)


def test_every_row_has_tolerances_only_for_dtypes_both_variants_run_in():
    for row in equivalences():
        for what, per_dtype in row.tolerances.items():
            for name in (row.a, row.b):
                unsupported = set(per_dtype) - set(reference.VARIANTS[name].dtypes)
                assert not unsupported, f"{row.id} {what}: {name} has no {sorted(unsupported)} variant"


# ---- the judgement itself, on made-up pairs: one short real run, its losses changed by hand -------

def _row(row_id: str) -> Equivalence:
    return next(row for row in equivalences() if row.id == row_id)


# a bit-for-bit row, and one with an rtol (specs/equivalences.toml), both of poly.tensor
BITWISE = "poly.autograd==poly.tensor"
WITHIN = "poly.module==poly.tensor"


@pytest.fixture(scope="module")
def short():
    return reference.run("poly.tensor", dtype="float32", steps=5, threads=1)


def _with_losses(t, losses):
    return dataclasses.replace(t, losses=[float(x) for x in losses])


def _one_ulp_up(t, step: int):
    losses = np.array(t.losses, dtype=t.dtype)
    losses[step] = np.nextafter(losses[step], np.inf, dtype=losses.dtype)
    return _with_losses(t, losses)


def test_a_bitwise_row_reports_a_one_ulp_change(short):
    found = problems(_row(BITWISE), short.dtype, _one_ulp_up(short, -1), short)
    assert len(found) == 1 and "bit for bit" in found[0], found


def test_a_difference_inside_the_rows_tolerance_passes_and_one_beyond_it_does_not(short):
    row = _row(WITHIN)
    tol = row.tolerances["losses"][short.dtype]
    b = np.asarray(short.losses)
    half, twice = (_with_losses(short, np.r_[b[:1], b[1:] + factor * tol.allowed(b[1:])]) for factor in (0.5, 2.0))
    assert problems(row, short.dtype, half, short) == []
    assert len(problems(row, short.dtype, twice, short)) == 1


def test_a_different_start_is_reported_even_inside_the_tolerance(short):
    # one ulp at step 0 is far inside rtol: only the start check can see it
    found = problems(_row(WITHIN), short.dtype, _one_ulp_up(short, 0), short)
    assert len(found) == 1 and found[0].startswith("not the same start"), found


def test_a_bitwise_row_whose_torch_fact_fails_judges_float32_by_the_golden_policy(short, monkeypatch):
    # See Note [clamp gradient at 0]: a stand-in row resting on a fact stated false on this torch
    row = dataclasses.replace(_row(BITWISE), bitwise_requires="clamp_min_grad_at_zero")
    monkeypatch.setattr(equivalence, "fact", lambda name: 0.0)
    assert problems(row, "float32", _one_ulp_up(short, -1), short) == []
    doubled = _with_losses(short, np.r_[short.losses[:1], 2 * np.asarray(short.losses[1:])])
    found = problems(row, "float32", doubled, short)
    assert len(found) == 1 and "diverged" in found[0], found


def _raw(row_id: str) -> dict:
    return next(dict(raw) for raw in equivalence._table()["equivalence"] if f"{raw['a']}=={raw['b']}" == row_id)


@pytest.mark.parametrize("change, choices", [
    ({"a": "poly.nonesuch"}, list(reference.VARIANTS)),
    (dict.fromkeys(equivalence.WHAT), list(equivalence.WHAT)),
    ({"start": "zeros"}, list(equivalence.STARTS)),
    ({"seeds": "all"}, list(equivalence.SEEDS)),
], ids=["not a variant", "compares nothing", "bad start", "bad seeds"])
def test_a_malformed_row_raises_naming_the_valid_choices(change, choices, monkeypatch):
    good = _raw(BITWISE)
    table = {"seed_range": [0, 1], "equivalence": [good]}
    monkeypatch.setattr(equivalence, "_table", lambda: table)
    load = equivalence.equivalences.__wrapped__  # past the cache of the real table
    assert [row.id for row in load()] == [BITWISE]  # the row loads before the change
    table["equivalence"] = [{k: v for k, v in {**good, **change}.items() if v is not None}]
    with pytest.raises(ValueError) as raised:
        load()
    assert all(choice in str(raised.value) for choice in choices), raised.value
