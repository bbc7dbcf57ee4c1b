"""The figures behind specs/equivalences.toml: how far apart the two runs of each row end.

    python benchmarks/measure_equivalence.py [--seeds 100] [--only mlp.nn==mlp.module ...]

For every row, dtype and compared quantity (losses, final_loss, params): the largest |a - b| and
the largest |a - b| / |b| over values with |b| > 1e-3, over seeds 0..N-1, one torch thread and one
BLAS thread, the runs made exactly as tests/test_equivalences.py makes them (reference.equivalence).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference.equivalence import equivalences, largest_differences, run_pair  # noqa: E402


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
            worst: dict[str, list[float]] = {}
            for seed in range(args.seeds):
                a, b = run_pair(row, seed, dtype)
                for what, (absolute, relative) in largest_differences(row, a, b).items():
                    old = worst.setdefault(what, [0.0, 0.0])
                    worst[what] = [max(old[0], absolute), max(old[1], relative)]
            for what, (absolute, relative) in worst.items():
                tol = row.tolerances[what].get(dtype)
                print(f"{row.id} {dtype} {what}, seeds 0..{args.seeds - 1}: max |a - b| {absolute:.3g}, "
                      f"max |a - b| / |b| (|b| > 1e-3) {relative:.3g}; tolerance {tol}")


if __name__ == "__main__":
    main()
