"""The figures behind specs/tolerances.toml [equivalence]: how far apart two runs end that are
equivalent by construction.

    python benchmarks/measure_equivalence_tolerances.py [--seeds 50] [--only nn-module|numpy-torch]

  mlp.nn vs mlp.module (same seed, both dtypes): max |difference| of the final parameters,
      max of |difference| / |mlp.module's value| over entries with |value| > 1e-3, and the
      relative difference of the final loss.
  NumPy vs torch from the same float64 start (mlp, poly): the max relative difference of the loss
      over all steps, and of the final parameters (abs and relative as above).

Seeds 0..N-1, one torch thread and one BLAS thread, as the tests run them.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import reference  # noqa: E402


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_{name}", ROOT / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def differences(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    absolute = float(np.max(np.abs(a - b), initial=0.0))
    big = np.abs(b) > 1e-3
    relative = float(np.max(np.abs(a - b)[big] / np.abs(b[big]), initial=0.0))
    return absolute, relative


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--only", choices=["nn-module", "numpy-torch"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    eq = _load("test_equivalences")
    with threadpool_limits(limits=1, user_api="blas"):
        for dtype in ("float64", "float32") if args.only != "numpy-torch" else ():
            worst = np.zeros(3)
            travel = np.inf
            for seed in range(args.seeds):
                start = reference.run("mlp.module", seed=seed, dtype=dtype, threads=1, steps=1)
                nn = reference.run("mlp.nn", seed=seed, dtype=dtype, threads=1)
                mod = reference.run("mlp.module", seed=seed, dtype=dtype, threads=1)
                for p, q in zip(nn.params.values(), mod.params.values()):
                    worst[:2] = np.maximum(worst[:2], differences(p.numpy(), q.numpy()))
                worst[2] = max(worst[2], abs(nn.losses[-1] - mod.losses[-1]) / abs(mod.losses[-1]))
                moved = max(float((q - s).abs().max()) for q, s in zip(mod.params.values(), start.params.values()))
                travel = min(travel, moved)
            print(f"mlp.nn vs mlp.module {dtype}, seeds 0..{args.seeds - 1}: params max abs diff {worst[0]:.3g},"
                  f" max rel diff (|value| > 1e-3) {worst[1]:.3g}; final loss max rel diff {worst[2]:.3g};"
                  f" for scale, the parameters travel by at least {travel:.3g} (max |final - after step 1|)")
        for family in ("mlp", "poly") if args.only != "nn-module" else ():
            worst = np.zeros(5)
            for seed in range(args.seeds):
                n, t = eq.numpy_and_torch_from_the_same_start(family, seed)
                ln, lt = np.array(n["losses"]), np.array(t["losses"])
                rel = np.abs(lt - ln) / np.abs(ln)
                worst[0] = max(worst[0], float(np.max(rel)))
                worst[1] = max(worst[1], float(np.max(rel[ln > 1e-3], initial=0.0)))
                worst[2] = max(worst[2], float(np.max(np.abs(lt - ln)[ln <= 1e-3], initial=0.0)))
                for name in n["params"]:
                    worst[3:] = np.maximum(worst[3:], differences(t["params"][name], n["params"][name]))
            print(f"{family}.numpy vs {family}.tensor float64 same start, seeds 0..{args.seeds - 1}: loss max rel diff"
                  f" {worst[0]:.3g} (any step), {worst[1]:.3g} (steps with loss > 1e-3), max abs diff {worst[2]:.3g}"
                  f" (steps with loss <= 1e-3); params max abs diff {worst[3]:.3g}, max rel diff (|value| > 1e-3)"
                  f" {worst[4]:.3g}")


if __name__ == "__main__":
    main()
