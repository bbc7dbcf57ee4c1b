"""The judge layer: is a run what it should be, and if not, where did it part?

    status.py      the one vocabulary (See Note [one status, four words]) and exit statuses
    rules.py       the calibrated rows (specs/golden_policy.toml, specs/golden_tolerances.toml)
    checks.py      the policy's checks, each returning a Finding (applied or not, and why)
    verdict.py     judge(...) -> Verdict: one status, the checks applied, the numbers
    goldens.py     the golden store (read / write / migrate / kept op traces) and judge_golden
    locate.py      where two runs part: the step (from the state) and the op (from traces)
    matrix.py      one Matrix of cells that check, compare and the pytest summary build
    recordings.py  compare: recorded trajectories side by side
    validation.py  check: an installed torch against the goldens and properties
    properties.py  the properties on fixed inputs check runs
    equivalence.py pairs of variants that compute the same thing (specs/equivalences.toml)

Imports the harness and trace layers, never a report or a door (reference/report, reference/cli,
reference/testing).
"""
