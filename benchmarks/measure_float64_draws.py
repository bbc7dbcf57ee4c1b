"""Measure how blog-poly's float64-drawn autograd program differs from the cast run.

poly.autograd --dtype float64 draws in float32 and casts (the official program's numbers, widened);
with --set draw_dtype=float64 it draws in float64 as blog-poly does (dtype = float). For each seed:
whether the float32 draws are the float64 draws rounded, the largest relative difference of the
starting numbers, and of the losses over the 2000 steps (both runs float64, one thread).

    python benchmarks/measure_float64_draws.py --seeds 0-19     # the figures in specs/tolerances.toml
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-19")
    args = ap.parse_args(argv)
    import torch

    import reference
    from reference.harness import seed_everything
    from reference.harness.planning import parse_seeds
    from reference.variants import poly_autograd

    rows = []
    for seed in parse_seeds(args.seeds):
        starts = {}
        for draw in ("float32", "float64"):
            seed_everything(seed)
            starts[draw] = poly_autograd.make(2000, draw)
        rounded = all(
            torch.equal(starts["float64"][k].detach().float(), starts["float32"][k].detach()) for k in "abcd"
        )
        start_rel = max(
            float(((starts["float64"][k].detach() - starts["float32"][k].detach().double()).abs()
                   / starts["float64"][k].detach().abs().clamp_min(1e-300)).max())
            for k in "xabcd"
        )
        cast = reference.run("poly.autograd", seed=seed, dtype="float64", threads=1).losses
        drawn = reference.run("poly.autograd", seed=seed, dtype="float64", draw_dtype="float64", threads=1).losses
        rel = np.abs(np.array(drawn) - np.array(cast)) / np.abs(np.array(cast))
        rows.append((seed, rounded, start_rel, float(rel.max()), int(rel.argmax()), float(rel[-1])))
        print(f"seed {seed:3d}: float32 draws = float64 draws rounded: {rounded}; start max rel {start_rel:.3g}; "
              f"losses max rel {rel.max():.4g} (step {rel.argmax()}), final {rel[-1]:.4g}", flush=True)
    m = np.array([r[3] for r in rows])
    print(f"losses max relative difference over seeds {args.seeds}: {m.min():.4g} .. {m.max():.4g}, "
          f"median {np.median(m):.4g}; float32 draws are the float64 draws rounded on "
          f"{sum(r[1] for r in rows)}/{len(rows)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
