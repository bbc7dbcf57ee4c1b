"""Does the golden gate catch tutorial-relevant changes in torch? Inject them and see.

    python benchmarks/inject_changes.py [--only NAME ...]

Each injection monkeypatches torch in this process the way a torch release, a kernel or a
container could change it (optimiser constants, loss reduction, activation gradient at 0, layer
init, matmul precision), runs every mlp/poly variant in both dtypes exactly as the golden tests do,
and judges the runs with the golden policy. Prints, per injection and dtype, which variants the
gate flags and which it does not. Nothing is written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reference  # noqa: E402
from reference.harness.planning import Plan, plan  # noqa: E402
from reference.harness.running import execute  # noqa: E402
from reference.harness.trajectory import Trajectory  # noqa: E402
from reference.injections import INJECTIONS  # noqa: E402
from reference.judge.equivalence import equivalences, problems, run_pair  # noqa: E402
from reference.judge.goldens import GoldenKey, judge_golden  # noqa: E402
from reference.judge.status import Status  # noqa: E402
from reference.judge.verdict import Verdict  # noqa: E402


def kept_runs() -> Callable[..., Trajectory]:
    """reference.run, each distinct run made once: the runs of one injection, shared by the golden
    judgement and the equivalence rows (in this process, unlike the gate's cached_run, which refuses
    runs under an injection)."""
    made: dict[Plan, Trajectory] = {}

    def run(variant_id: str, **arguments) -> Trajectory:
        p = plan(variant_id, **arguments)
        if p not in made:
            made[p] = execute(p)
        return made[p]

    return run


def judge(variant_id: str, dtype: str, run: Callable[..., Trajectory], seed: int = 0) -> Verdict:
    """The golden tests' judgement (reference.judge.goldens.judge_golden) of the run `run` makes."""
    return judge_golden(GoldenKey(variant_id, dtype, seed), runner=run, threads=1).verdict


def broken_equivalences(run: Callable[..., Trajectory], dtype: str) -> list[str]:
    """The golden-seed rows of specs/equivalences.toml that the runs break, judged as
    tests/test_equivalences.py judges them (reference.judge.equivalence.problems)."""
    return [row.id for row in equivalences() if row.seeds == "golden" and dtype in row.dtypes
            and problems(row, dtype, *run_pair(row, 0, dtype, runner=run), runner=run)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="injection names (substring match)")
    args = parser.parse_args()
    ids = [v for v in reference.VARIANTS if reference.VARIANTS[v].family in ("mlp", "poly")]
    for name, make in INJECTIONS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        print(f"\n== {name}")
        with make():
            run = kept_runs()  # float64 first: the float32 equivalence rows may judge against it
            for dtype in ("float64", "float32"):
                verdicts = [judge(v, dtype, run) for v in ids]
                caught = [v.variant for v in verdicts if not v.ok]
                unchanged = [v.variant for v in verdicts if v.status is Status.EXACT]
                missed = [v.variant for v in verdicts if v.status is Status.CLOSE]
                print(f"  {dtype}: caught {len(caught)}: {', '.join(caught) or '-'}")
                if missed:
                    print(f"  {dtype}: changed but within policy: " + "; ".join(
                        f"{v.variant} (max rel {v.max_rel_error:.2g})" for v in verdicts if v.status is Status.CLOSE))
                print(f"  {dtype}: bitwise unchanged: {len(unchanged)}")
                from reference.facts import optimizer_default_mismatches

                named = optimizer_default_mismatches()
                if named:
                    print(f"  {dtype}: caught by test_optimizer_defaults_the_tutorials_rely_on_are_torchs: "
                          + "; ".join(named))
                broken = broken_equivalences(run, dtype)
                if broken:
                    print(f"  {dtype}: equivalences broken (test_equivalent_variants_agree_on_the_golden_seed): "
                          + ", ".join(broken))


if __name__ == "__main__":
    main()
