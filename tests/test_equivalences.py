"""Pairs of variants that compute the same thing: every row of specs/equivalences.toml, within its
(rtol, atol) pairs.

- "golden" rows: on the golden seed, with the full-length runs the gate makes anyway (cached_run);
- "drawn" rows: on seeds drawn by Hypothesis from the measured seed_range (a few per run; more under
  the thorough profile), each example two full-length runs (shared through cached_run, except the
  torch translation given the NumPy program's start).
"""
from __future__ import annotations

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import reference
from reference.equivalence import Equivalence, equivalences, problems, run_pair, seed_range

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


def test_every_row_names_two_variants_that_exist_and_a_tolerance_per_dtype_they_run_in():
    for row in equivalences():
        for what, per_dtype in row.tolerances.items():
            for name in (row.a, row.b):
                unsupported = set(per_dtype) - set(reference.VARIANTS[name].dtypes)
                assert not unsupported, f"{row.id} {what}: {name} has no {sorted(unsupported)} variant"

