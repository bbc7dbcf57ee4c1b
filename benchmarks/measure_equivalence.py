"""Max relative per-step loss difference between two variants over seeds, both dtypes.

    python benchmarks/measure_equivalence.py poly.module poly.tensor [--seeds 10]

Prints the figures that the [equivalent_to] tolerances in specs/variants/*.toml rest on.
"""
import argparse

import numpy as np

import reference


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant")
    parser.add_argument("other")
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    for dtype in ("float32", "float64"):
        worst = 0.0
        for seed in range(args.seeds):
            a = np.array(reference.run(args.variant, seed=seed, dtype=dtype, threads=1).losses)
            b = np.array(reference.run(args.other, seed=seed, dtype=dtype, threads=1).losses)
            worst = max(worst, float(np.max(np.abs(a - b) / np.abs(b))))
        print(f"{args.variant} vs {args.other} {dtype}: max relative loss difference {worst:.3g}"
              f" over seeds 0..{args.seeds - 1}")


if __name__ == "__main__":
    main()
