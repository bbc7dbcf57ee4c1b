"""Seed sweep behind the [claims] tables of specs/variants/*.toml: how far each variant gets.

    python benchmarks/measure_convergence.py [--seeds 500] [--dynamic-seeds 40] [--dtype float32]
                                             [--variants mlp.tensor,poly.nn] [--jobs 2] [--out FILE]

Runs every variant at its tutorial dtype (or --dtype), full length, one torch thread and one
BLAS thread per process (NumPy's OpenBLAS is limited too, See Note [NumPy's BLAS threads]: two OpenBLAS threads are ~25x slower
here and give other bits), over seeds 0..N-1, and prints per variant:

  final loss       worst (max) / median / best over the seeds, and the worst seed
  final / optimum  poly only: the final loss over the least-squares optimum of the cubic on the
                   same grid (np.linalg.lstsq, float64)
  lowest loss      the smallest loss of each run (for variants whose last loss is erratic)
  final / initial  the final loss over the step-0 loss
  rising steps     the largest fraction of steps whose loss is above the previous step's
  non-finite       how many seeds ever recorded a nan or inf loss

poly.custom_function starts from a fixed point (no random draws); it is run on a handful of
seeds only, to show that the seed does not matter. poly.dynamic (30000 steps, ~10 s a run) gets
--dynamic-seeds seeds. --out writes one JSON line per run for further analysis.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference.poly_optimum import least_squares_optimum  # noqa: E402

FIXED_START = {"poly.custom_function": 5}  # variants with no random draws: this many seeds suffice


def _init_worker() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    global _limits
    _limits = threadpool_limits(limits=1, user_api="blas")  # kept for the life of the worker


def one_run(task: tuple[str, int, str | None]) -> dict:
    import reference

    vid, seed, dtype = task
    start = time.perf_counter()
    t = reference.run(vid, seed=seed, dtype=dtype, threads=1)
    losses = np.asarray(t.losses, dtype=np.float64)
    finite = bool(np.all(np.isfinite(losses)))
    rising = float(np.mean(losses[1:] > losses[:-1])) if len(losses) > 1 else 0.0
    row = {
        "variant": vid, "seed": seed, "dtype": t.dtype, "steps": t.steps,
        "initial": float(losses[0]), "final": float(losses[-1]), "min": float(np.nanmin(losses)),
        "finite": finite, "rising_fraction": rising, "wall_s": time.perf_counter() - start,
    }
    if vid.startswith("poly."):
        row["over_optimum"] = row["final"] / least_squares_optimum(int(t.hyperparameters["points"]))
    return row


def summarise(rows: list[dict]) -> str:
    vid = rows[0]["variant"]
    finals = [r["final"] for r in rows]
    worst = max(rows, key=lambda r: r["final"] if math.isfinite(r["final"]) else math.inf)
    lines = [
        f"{vid} ({rows[0]['dtype']}, {len(rows)} seeds {min(r['seed'] for r in rows)}.."
        f"{max(r['seed'] for r in rows)}, {rows[0]['steps']} steps)",
        f"  final loss        worst {worst['final']:.3g} (seed {worst['seed']}), median "
        f"{statistics.median(finals):.3g}, best {min(finals):.3g}",
    ]
    for q in (0.9, 0.99):
        lines[-1] += f", q{int(q * 100)} {np.quantile(finals, q):.3g}"
    if "over_optimum" in rows[0]:
        ratios = [r["over_optimum"] for r in rows]
        w = max(rows, key=lambda r: r["over_optimum"])
        lines.append(
            f"  final / optimum   worst {w['over_optimum']:.4g} (seed {w['seed']}), median "
            f"{statistics.median(ratios):.4g}, best {min(ratios):.4g}"
        )
    w = max(rows, key=lambda r: r["min"])
    lines.append(
        f"  lowest loss       worst {w['min']:.3g} (seed {w['seed']}), median "
        f"{statistics.median(r['min'] for r in rows):.3g} (the smallest loss of each run)"
    )
    ratio = [r["final"] / r["initial"] for r in rows]
    w = max(rows, key=lambda r: r["final"] / r["initial"])
    lines.append(f"  final / initial   worst {max(ratio):.3g} (seed {w['seed']}), median {statistics.median(ratio):.3g}")
    lines.append(f"  rising steps      worst {max(r['rising_fraction'] for r in rows):.3f} of steps")
    lines.append(f"  non-finite        {sum(not r['finite'] for r in rows)} of {len(rows)} seeds")
    lines.append(f"  wall              median {statistics.median(r['wall_s'] for r in rows):.2f} s a run")
    return "\n".join(lines)


def main() -> None:
    import reference

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--dynamic-seeds", type=int, default=40)
    parser.add_argument("--dtype", default=None, help="default: each variant's tutorial dtype")
    default = [vid for vid, v in reference.VARIANTS.items() if v.family in ("mlp", "poly")]
    parser.add_argument("--variants", default=",".join(default))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=None, help="write one JSON line per run here")
    args = parser.parse_args()

    variants = [v for v in args.variants.split(",") if v]
    tasks = []
    for vid in variants:
        n = args.dynamic_seeds if vid == "poly.dynamic" else FIXED_START.get(vid, args.seeds)
        tasks += [(vid, seed, args.dtype) for seed in range(n)]
    # longest first, so that the pool does not end on one slow straggler
    tasks.sort(key=lambda t: t[0] != "poly.dynamic")

    print(f"least-squares optimum of the cubic on linspace(-pi, pi, 2000): {least_squares_optimum(2000):.6g}")
    by_variant: dict[str, list[dict]] = {v: [] for v in variants}
    out = open(args.out, "w") if args.out else None
    with mp.get_context("spawn").Pool(args.jobs, initializer=_init_worker) as pool:
        for row in pool.imap_unordered(one_run, tasks, chunksize=4):
            by_variant[row["variant"]].append(row)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()
    for vid in variants:
        if by_variant[vid]:
            print(summarise(sorted(by_variant[vid], key=lambda r: r["seed"])))


if __name__ == "__main__":
    main()
