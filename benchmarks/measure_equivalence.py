"""The figures behind specs/equivalences.toml: how far apart the two runs of each row end.

    python benchmarks/measure_equivalence.py [--seeds 100] [--only mlp.nn==mlp.module ...]

For every row, dtype and compared quantity (losses, final_loss, params), over seeds 0..N-1, one
torch thread and one BLAS thread, the runs made exactly as tests/test_equivalences.py makes them
(reference.judge.equivalence): the largest |a - b| (overall, and over values with |b| <= 1e-3) and the
largest |a - b| / |b| (over values with |b| > 1e-3, and over all). Rows that compare parameters also
get, for scale, how far b's parameters travel: the smallest over the seeds of max |final - after
step 1|.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from reference import harness  # noqa: E402
from reference.judge.equivalence import SMALL, Differences, Equivalence, equivalences, largest_differences, run_pair  # noqa: E402
from reference.harness.trajectory import Trajectory  # noqa: E402


def travel(row: Equivalence, seed: int, dtype: str, b: Trajectory) -> float:
    """max |final - after step 1| over b's parameters (b's own run from the seed: the same start)."""
    first = harness.run(row.b, seed=seed, dtype=dtype, steps=1, threads=1)
    return max(float((p - q).abs().max()) for p, q in zip(b.params.values(), first.params.values(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--only", nargs="*", default=None, help="row ids, e.g. mlp.nn==mlp.module")
    args = parser.parse_args()
    rows = [row for row in equivalences() if not args.only or row.id in args.only]
    if args.only and not rows:
        raise SystemExit(f"--only {args.only}: no such row. Valid choices: {', '.join(r.id for r in equivalences())}")
    for row in rows:
        for dtype in row.dtypes:
            worst: dict[str, np.ndarray] = {}
            travelled = np.inf
            for seed in range(args.seeds):
                a, b = run_pair(row, seed, dtype)
                for what, figures in largest_differences(row, a, b).items():
                    worst[what] = np.maximum(worst.get(what, 0.0), figures)
                if "params" in row.tolerances:
                    travelled = min(travelled, travel(row, seed, dtype, b))
            for what, figures in worst.items():
                d = Differences(*map(float, figures))
                print(f"{row.id} {dtype} {what}, seeds 0..{args.seeds - 1}: max |a - b| {d.absolute:.3g} "
                      f"(|b| <= {SMALL:g}: {d.absolute_small:.3g}), max |a - b| / |b| (|b| > {SMALL:g}) "
                      f"{d.relative_big:.3g} (any: {d.relative:.3g}); tolerance {row.tolerances[what].get(dtype)}")
            if "params" in row.tolerances:
                print(f"{row.id} {dtype}: {row.b}'s parameters travel at least {travelled:.3g} "
                      f"(max |final - after step 1|)")

if __name__ == "__main__":
    main()
