"""The smallest change of the learning rate each judgement detects, per variant and dtype: bit for bit
against an expectation set of the same environment, and the cross-machine policy.

    python benchmarks/min_detectable.py [--variants ID ...] [--seed 0]

For d = 1e-16, 1e-15, ..., 1e-2: the golden run with lr x (1 + d), at one thread, against the same run
with lr. "exact" is the smallest d whose run has other bits (what `check --expect` on a box of the same
environment catches); "policy" the smallest d the calibrated row judges diverged (what `check` against
the shipped goldens catches on any box). Printed as a Markdown table (docs/expectations.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DECADES = [10.0 ** -k for k in range(16, 1, -1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    import reference
    from reference.harness.trajectory import params_digest, params_record
    from reference.judge.goldens import GoldenKey
    from reference.judge.status import Status
    from reference.judge.verdict import judge

    torch.set_num_threads(1)
    ids = args.variants or list(reference.VARIANTS)
    print("| variant | dtype | exact: smallest d caught | policy: smallest d caught |")
    print("| --- | --- | --- | --- |")
    for vid in ids:
        variant = reference.VARIANTS[vid]
        lr = variant.hyperparameters["lr"]
        steps = GoldenKey(vid, "float32", args.seed).steps
        base64 = reference.run(vid, seed=args.seed, dtype="float64", steps=steps, threads=1) \
            if "float64" in variant.dtypes else None
        for dtype in variant.dtypes:
            base = base64 if dtype == "float64" else reference.run(vid, seed=args.seed, dtype=dtype, steps=steps,
                                                                   threads=1)
            exact = policy = None
            for d in DECADES:
                now = reference.run(vid, seed=args.seed, dtype=dtype, steps=steps, threads=1, lr=lr * (1 + d))
                if exact is None and (now.losses != base.losses or params_digest(now.params) != params_digest(base.params)):
                    exact = d
                verdict = judge(vid, dtype, now.losses, base.losses,
                                reference64=None if dtype == "float64" or base64 is None else base64.losses,
                                now_params=params_record(now.params), reference_params=params_record(base.params))
                if verdict.status is Status.DIVERGED:
                    policy = d
                    break
            shown = [f"{x:.0e}" if x is not None else "> 1e-02" for x in (exact, policy)]
            print(f"| {vid} | {dtype} | {shown[0]} | {shown[1]} |", flush=True)


if __name__ == "__main__":
    main()
