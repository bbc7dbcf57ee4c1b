"""What the per-step state fingerprints cost (reference/harness/state.py): a run with record_state=True
against the same run without, fastest of N alternated runs of each, one thread. The default gate does
not record them (only recordings and `run --out` / `check --out` do), so its time is untouched; this
is what a recording pays.

    python benchmarks/bench_state.py [--repeats 5] [--variants ID ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", nargs="*", default=["mlp.tensor", "mlp.variable", "mlp.nn", "mlp.optim",
                                                          "poly.nn", "poly.dynamic", "mnist.quickstart"])
    args = parser.parse_args()
    import torch

    import reference

    torch.set_num_threads(1)
    print(f"record_state=True against off, fastest of {args.repeats} each (torch {torch.__version__}, "
          f"load {os.getloadavg()[0]:.1f})")
    print(f"{'variant':<18} {'steps':>6} {'off ms':>9} {'on ms':>9} {'ratio':>7} {'per step':>10}")
    for vid in args.variants:
        steps = 48 if vid.startswith("mnist") else 3000 if vid == "poly.dynamic" else None
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for on in (False, True):
                start = time.process_time()
                t = reference.run(vid, threads=1, steps=steps, record_state=on)
                times[on].append(time.process_time() - start)
        off, on = min(times[False]), min(times[True])
        print(f"{vid:<18} {t.steps:>6} {off * 1e3:>9.1f} {on * 1e3:>9.1f} {on / off:>6.2f}x "
              f"{(on - off) / t.steps * 1e6:>8.1f} us")


if __name__ == "__main__":
    main()
