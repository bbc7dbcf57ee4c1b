"""How far torch's optimizer steps and losses are from their documented float64 formulas, in units of the
dtype's unit roundoff u: the figures behind specs/tolerances.toml [optimizer_step] and [losses].

    python benchmarks/measure_step_error.py [--examples 1000] [--seed 0]

For each optimizer (SGD with and without momentum, Adam, RMSprop, the manual update) and dtype, random
steps drawn as the properties draw them (zeros, normals, magnitudes 1e-15 .. 1e15 / 1e-100 .. 1e100,
first and later steps): the largest |torch - reference| / (u x the magnitudes the bound scales by)
of every quantity; then MSELoss(sum) and CrossEntropyLoss likewise. Prints one row per line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MAGNITUDE = {"float32": (1e-15, 1e15), "float64": (1e-100, 1e100)}


def values(rng: np.random.Generator, dtype: str, shape: tuple[int, ...], positive: bool = False) -> np.ndarray:
    lo, hi = MAGNITUDE[dtype]
    kind = rng.integers(0, 3, shape)
    normal = rng.uniform(-10, 10, shape)
    magnitude = 10.0 ** rng.uniform(np.log10(lo), np.log10(hi), shape) * rng.choice([-1.0, 1.0], shape)
    out = np.where(kind == 0, 0.0, np.where(kind == 1, normal, magnitude))
    out = np.where((out != 0) & (np.abs(out) < lo), 0.0, out)
    return np.abs(out) if positive else out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from reference.judge.blocks import optimizers as opt
    from reference.judge.blocks.functions import cross_entropy_problems, mse_sum_problems  # noqa: F401 (the same formulas)
    from reference.tolerances import tolerance

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    rows = []
    for dtype in ("float32", "float64"):
        u = float(np.finfo(dtype).eps) / 2
        rtol = tolerance("optimizer_step", dtype).rtol
        for name, hyper in (("manual", {"lr": 1e-4}), ("SGD", {"lr": 1e-4}), ("SGD", {"lr": 1e-4, "momentum": 0.9}),
                            ("Adam", {"lr": 1e-4}), ("RMSprop", {"lr": 1e-3})):
            worst: dict[str, float] = {}
            for _ in range(args.examples):
                shape = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
                p, g = values(rng, dtype, shape), values(rng, dtype, shape)
                if not (np.all(np.isfinite(p.astype(dtype) ** 2)) and np.all(np.isfinite(g.astype(dtype) ** 2))):
                    continue
                state = {}
                if rng.random() < 0.5:
                    if name == "SGD" and hyper.get("momentum"):
                        state = {"momentum_buffer": values(rng, dtype, shape)}
                    elif name == "Adam":
                        state = {"step": int(rng.integers(1, 3000)), "exp_avg": values(rng, dtype, shape),
                                 "exp_avg_sq": values(rng, dtype, shape, positive=True)}
                    elif name == "RMSprop":
                        state = {"step": int(rng.integers(1, 3000)), "square_avg": values(rng, dtype, shape, positive=True)}
                case = opt.StepCase(name, hyper, p, g, state, dtype)
                got, ref = opt.torch_step(case), opt.documented_step(case)
                for key, want in ref.items():
                    if key == "step":
                        continue
                    bound = opt._bound(case, key, ref)  # = rtol x the scale; in units of u: / (rtol / u)
                    ratio = opt._beyond(got[key], want, bound) * rtol / u if np.any(bound) else \
                        float(np.max(np.abs(got[key] - want)) > 0) * np.inf
                    worst[key] = max(worst.get(key, 0.0), ratio)
            shown = ", ".join(f"{k} {v:.2g} u" for k, v in sorted(worst.items()))
            label = f"{name}" + ("(momentum)" if hyper.get("momentum") else "")
            rows.append(f"{dtype:8} {label:14} {shown}   (bound {rtol / u:.3g} u)")
        # losses
        lrtol = tolerance("losses", dtype).rtol
        mse_worst = ce_worst = 0.0
        for _ in range(args.examples):
            n = int(rng.integers(1, 1025))
            x, y = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3), rng.standard_normal(n)
            a, b = torch.tensor(x, dtype=getattr(torch, dtype)), torch.tensor(y, dtype=getattr(torch, dtype))
            got = float(torch.nn.MSELoss(reduction="sum")(a, b))
            want = float(np.sum((a.double().numpy() - b.double().numpy()) ** 2))
            mse_worst = max(mse_worst, abs(got - want) / (u * want) if want else 0.0)
            batch, classes = int(rng.integers(1, 65)), int(rng.integers(2, 17))
            z = rng.standard_normal((batch, classes)) * rng.choice([1e-3, 1.0, 30.0])
            t = rng.integers(0, classes, batch)
            zt = torch.tensor(z, dtype=getattr(torch, dtype))
            got = float(torch.nn.CrossEntropyLoss()(zt, torch.tensor(t)))
            zd = zt.double().numpy()
            m = zd.max(axis=1, keepdims=True)
            lse = (m + np.log(np.exp(zd - m).sum(axis=1, keepdims=True)))[:, 0]
            picked = zd[np.arange(batch), t]
            scale = float(np.mean(np.abs(m[:, 0]) + np.abs(picked) + np.log(classes)))
            ce_worst = max(ce_worst, abs(got - float(np.mean(lse - picked))) / (u * scale))
        rows.append(f"{dtype:8} {'MSELoss(sum)':14} {mse_worst:.2g} u of the sum   (bound {lrtol / u:.3g} u)")
        rows.append(f"{dtype:8} {'CrossEntropy':14} {ce_worst:.2g} u of the scale (bound {lrtol / u:.3g} u)")
    print(f"worst |torch - documented formula| over {args.examples} random examples each (torch {torch.__version__}):")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
