"""CPU vs CUDA time for the MNIST classifier of blog-mnist-2021 ("cuda와 cpu 시간차이 비교").

Trains the same epoch(s) from the same start on each device (reference.run: weights and data
drawn on the CPU, the same shuffles) and prints each device's training time, and the ratio.
A device without CUDA is reported as unavailable, not an error. Each device first runs a few
warm-up batches (the first optimizer step of a process imports torch._dynamo; CUDA initialises
its context and cuBLAS), so the times are of steady-state training.

The time is the run's wall_time_s: the training batches (the tutorial's train loop, with each
batch's loss read back for the trajectory) and the test loop after each epoch; not the data
loading or the model's creation.

    python benchmarks/mnist_devices.py                       # the embedded default, 1 epoch
    python benchmarks/mnist_devices.py --mnist-root DIR      # real MNIST (938 batches an epoch)
    MNIST_ROOT=DIR python benchmarks/mnist_devices.py --repeat 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="mnist.quickstart", choices=["mnist.quickstart", "mnist.quickstart_fixed"])
    ap.add_argument("--mnist-root", default=None, help="MNIST IDX directory (default: $MNIST_ROOT, else the embedded digits)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs to time (default: 1)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per device; the median is reported")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default: 1; 0 leaves torch's own setting)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default=None, help="float32 (default) or float64")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.repeat < 1 or args.threads < 0:
        ap.error("--epochs and --repeat must be >= 1, --threads >= 0")

    import torch

    import reference
    from reference.mnist import batches_per_epoch, describe, resolve_root

    root = resolve_root(args.mnist_root)
    hp = reference.VARIANTS[args.variant].hyperparameters
    try:
        steps = args.epochs * batches_per_epoch(root, hp["batch_size"])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    threads = args.threads or None
    common = dict(seed=args.seed, dtype=args.dtype, threads=threads, data_root=root)
    print(f"{args.variant}, {describe(root)}")
    print(f"{args.epochs} epoch(s) = {steps} training batches of {hp['batch_size']}, seed {args.seed}, "
          f"torch {torch.__version__}, CPU threads {threads or torch.get_num_threads()}")

    times: dict[str, float] = {}
    for device in ("cpu", "cuda"):
        if device == "cuda" and not torch.cuda.is_available():
            why = "CPU-only build of torch" if torch.version.cuda is None else "no GPU visible"
            print(f"  cuda: unavailable ({why})")
            continue
        reference.run(args.variant, device=device, steps=min(3, steps), **common)  # warm-up
        runs = [reference.run(args.variant, device=device, steps=steps, **common) for _ in range(args.repeat)]
        times[device] = statistics.median(r.wall_time_s for r in runs)
        name = torch.cuda.get_device_name() if device == "cuda" else torch.backends.cpu.get_cpu_capability()
        spread = f" (min {min(r.wall_time_s for r in runs):.3f}, max {max(r.wall_time_s for r in runs):.3f})" if args.repeat > 1 else ""
        print(f"  {device}: {times[device]:.3f} s{spread}  {1e3 * times[device] / steps:.2f} ms/batch  "
              f"[{name}]  last batch loss {runs[-1].losses[-1]:.6f}")
    if "cuda" in times:
        print(f"  ratio cpu/cuda: {times['cpu'] / times['cuda']:.2f} (CUDA {'faster' if times['cuda'] < times['cpu'] else 'slower'})")
    else:
        print("  ratio cpu/cuda: n/a (CUDA unavailable)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
