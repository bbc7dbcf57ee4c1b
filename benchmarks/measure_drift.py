"""Measure benign drift and real-change sensitivity: the numbers specs/golden_policy.toml rests on.

    python benchmarks/measure_drift.py [--workdir DIR] [--steps-limit]

Runs every variant (seed 0, both dtypes) in a canonical setting (1 thread) and in settings that
must NOT count as a change (2 threads; ATEN_CPU_CAPABILITY=default / avx2; MKL_CBWR=COMPATIBLE),
plus a small real change that MUST count (lr x 1.0001), each in its own process. Prints, per
variant and dtype, the largest per-step relative loss error of each setting against the canonical
run, over the whole run and over the policy's early window, and the float32 shadow distances.
Results are cached as JSON under --workdir; delete it to re-measure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference import VARIANTS  # noqa: E402
from reference.policy import golden_steps, relative_error, rule_for, shadow_distance  # noqa: E402

# setting -> (environment of its process, extra run() arguments)
SETTINGS = {
    "threads2": ({}, {"threads": 2}),
    "cap-default": ({"ATEN_CPU_CAPABILITY": "default"}, {}),
    "cap-avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, {}),
    "mkl-compatible": ({"MKL_CBWR": "COMPATIBLE"}, {}),
    "lr+1e-4": ({}, {"lr_factor": 1.0001}),  # a real change: must be caught
}


def worker(name: str, dtype: str, ids: list[str], out: Path) -> None:
    """In this process: run every variant in one setting and write {variant: losses}."""
    import reference

    extra = dict(SETTINGS[name][1]) if name in SETTINGS else {}
    lr_factor = extra.pop("lr_factor", None)
    results = {}
    for vid in ids:
        overrides = {"lr": VARIANTS[vid].hyperparameters["lr"] * lr_factor} if lr_factor else {}
        steps = golden_steps(vid, VARIANTS[vid].steps)
        kwargs = {"threads": 1, **extra}
        results[vid] = reference.run(vid, dtype=dtype, steps=steps, **kwargs, **overrides).losses
    out.write_text(json.dumps(results))


def run_all(workdir: Path, name: str, dtype: str, ids: list[str]) -> dict:
    out = workdir / f"{name}-{dtype}.json"
    if not out.exists():
        env = SETTINGS.get(name, ({}, {}))[0]
        cmd = [sys.executable, __file__, "--worker", name, dtype, str(out), "--variants", *ids]
        subprocess.run(cmd, check=True, env={**os.environ, **env})
    return {k: np.array(v, dtype=float) for k, v in json.loads(out.read_text()).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tes-drift"))
    parser.add_argument("--variants", nargs="*", default=[v for v in VARIANTS if v.split(".")[0] in ("mlp", "poly")])
    parser.add_argument("--worker", nargs=3, metavar=("SETTING", "DTYPE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, dtype, out = args.worker
        worker(name, dtype, args.variants, Path(out))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    settings = SETTINGS
    for dtype in ("float64", "float32"):
        base = run_all(args.workdir, "base", dtype, args.variants)
        other = {name: run_all(args.workdir, name, dtype, args.variants) for name in settings}
        base64 = run_all(args.workdir, "base", "float64", args.variants)
        print(f"\n== {dtype}: max per-step relative loss error vs the 1-thread run (whole run | early window)")
        print(f"{'variant':<22}" + "".join(f"{n:>26}" for n in settings))
        for vid in args.variants:
            rule = rule_for(vid, dtype)
            w = rule.window or len(base[vid])
            cells = []
            for name in settings:
                e = relative_error(other[name][vid], base[vid])
                cells.append(f"{e.max():>12.2g} | {e[:w].max():<11.2g}")
            print(f"{vid:<22}" + "".join(f"{c:>26}" for c in cells) + f"   window={w}")
        if dtype == "float32":
            print("\n== float32 shadow distance from the float64 run (mean |log L32 - log L64|): canonical, then ratio of each setting")
            for vid in args.variants:
                d0 = shadow_distance(base[vid], base64[vid])
                ratios = "".join(f"{n}={shadow_distance(other[n][vid], base64[vid]) / max(d0, 1e-300):.3f}  " for n in settings)
                print(f"{vid:<22} {d0:>10.3g}   {ratios}")


if __name__ == "__main__":
    main()
