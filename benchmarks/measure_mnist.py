"""Measure the MNIST claims of specs/variants/mnist.*.toml over seeds.

For each seed and variant: one run of `steps` training batches (1 thread), with the test loop's
accuracy and both average losses after every epoch, and the sign of the logits on the test set.
Prints per-seed rows and, per checkpoint epoch, the min / median / max accuracy of each variant
and of the paired difference (fixed - documented, same seed: same initial weights and data order).

    python benchmarks/measure_mnist.py --seeds 0-19 --jobs 2            # the numbers in the specs
    python benchmarks/measure_mnist.py --seeds 0-4 --mnist-root DIR --steps 938
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reference.harness.planning import parse_seeds  # noqa: E402

VARIANTS = ("mnist.quickstart", "mnist.quickstart_fixed")


def one(job: tuple[str, int, int | None, str, str]) -> dict:
    variant_id, seed, steps, data_root, dtype = job
    import torch

    import reference
    from reference.mnist import evaluate, rebuild_model
    from reference.mnist.data import load_datasets
    from reference.variants import mnist_quickstart as mq

    per_epoch = []
    original = mq.test_loop

    def test_loop(dataloader, model, loss_fn):  # the run's own test loop, results kept
        result = original(dataloader, model, loss_fn)
        per_epoch.append(result)
        return result

    mq.test_loop = test_loop
    try:
        traj = reference.run(variant_id, seed=seed, steps=steps, threads=1, dtype=dtype, data_root=data_root)
    finally:
        mq.test_loop = original
    final = evaluate(traj)
    _, test_data = load_datasets(data_root)
    with torch.no_grad():
        logits = rebuild_model(traj)(test_data.tensors[0].to(getattr(torch, traj.dtype)))
    return dict(
        variant=variant_id, seed=seed, steps=traj.steps, wall_s=traj.wall_time_s,
        accuracy=[r.accuracy for r in per_epoch],
        avg_loss=[r.avg_loss for r in per_epoch],
        avg_loss_per_batch=[r.avg_loss_per_batch for r in per_epoch],
        final_accuracy=final.accuracy,
        first_loss=traj.losses[0], last_loss=traj.losses[-1],
        min_logit=float(logits.min()), negative_logit_fraction=float((logits < 0).double().mean()),
    )


def summary(values: list[float]) -> str:
    return f"min {min(values):.3f}  median {statistics.median(values):.3f}  max {max(values):.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--steps", type=int, default=None, help="training batches (default: the spec's)")
    ap.add_argument("--mnist-root", default="", help="MNIST IDX directory (default: the embedded digits)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--every", type=int, default=5, help="report every N epochs")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    jobs = [(v, s, args.steps, args.mnist_root, args.dtype) for s in seeds for v in VARIANTS]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one, jobs))
    by = {(r["variant"], r["seed"]): r for r in results}
    epochs = len(results[0]["accuracy"])
    marks = sorted({e for e in range(args.every, epochs + 1, args.every)} | {epochs})
    print(f"steps {results[0]['steps']}, {epochs} epochs, seeds {args.seeds}, {args.dtype}, "
          f"data {'embedded default' if not args.mnist_root else args.mnist_root}")
    for v in VARIANTS:
        print(f"\n{v}: test accuracy after epoch " + ", ".join(map(str, marks)))
        for s in seeds:
            r = by[v, s]
            print(f"  seed {s:>2}: " + "  ".join(f"{r['accuracy'][e - 1]:.3f}" for e in marks)
                  + f"   min logit {r['min_logit']:+.3f}  negative {r['negative_logit_fraction']:.3f}"
                  + f"   last loss {r['last_loss']:.3f}  {r['wall_s']:.1f}s")
    print()
    for e in marks:
        doc = [by[VARIANTS[0], s]["accuracy"][e - 1] for s in seeds]
        fix = [by[VARIANTS[1], s]["accuracy"][e - 1] for s in seeds]
        diff = [f - d for f, d in zip(fix, doc)]
        print(f"epoch {e:>3}: documented {summary(doc)} | fixed {summary(fix)} | fixed - documented {summary(diff)}")
    ratios = [r["avg_loss_per_batch"][-1] / r["avg_loss"][-1] for r in results]
    print(f"\nper-batch avg loss / documented avg loss: {summary(ratios)}")
    print(f"min logit, documented: {min(by[VARIANTS[0], s]['min_logit'] for s in seeds):+.4f}; "
          f"negative-logit fraction, fixed: {summary([by[VARIANTS[1], s]['negative_logit_fraction'] for s in seeds])}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
