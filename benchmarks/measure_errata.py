"""Measure the numbers behind specs/tolerances.toml [errata."poly.optim"] (blog-poly's RMSprop lr 1e-6).

For each seed: poly.optim at its documented lr (1e-3) and at blog-poly's lr (1e-6), 2000 steps,
float32, 1 thread; the final loss as a multiple of the least-squares optimum on the same grid, and
the largest coefficient distance from the optimum's coefficients.

    python benchmarks/measure_errata.py --seeds 0-19
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reference.harness.planning import parse_seeds  # noqa: E402

from reference.poly_optimum import least_squares_cubic  # noqa: E402


def coefficients(t) -> np.ndarray:
    """(a, b, c, d) of a poly.optim Trajectory: the bias and the Linear(3, 1) weights."""
    return np.concatenate([t.params["0.bias"].double().numpy(), t.params["0.weight"].double().numpy().ravel()])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-19")
    args = ap.parse_args(argv)

    import reference

    best, best_coef = least_squares_cubic(2000)
    print(f"least-squares optimum: loss {best:.6f}, coefficients {np.round(best_coef, 6).tolist()}")
    rows = {"1e-3": [], "1e-6": []}
    for seed in parse_seeds(args.seeds):
        for name, lr in (("1e-3", 1e-3), ("1e-6", 1e-6)):
            t = reference.run("poly.optim", seed=seed, lr=lr, threads=1)
            factor = t.losses[-1] / best
            coef = float(np.max(np.abs(coefficients(t) - best_coef)))
            rows[name].append((factor, coef))
            print(f"seed {seed:>2} lr {name}: final loss {t.losses[-1]:.4f} = {factor:.4f} x optimum, "
                  f"max |coefficient - optimum| {coef:.4f}")
    for name, values in rows.items():
        f = [v[0] for v in values]
        c = [v[1] for v in values]
        print(f"lr {name}: loss / optimum min {min(f):.4f} median {statistics.median(f):.4f} max {max(f):.4f}; "
              f"coefficient distance min {min(c):.4f} max {max(c):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
