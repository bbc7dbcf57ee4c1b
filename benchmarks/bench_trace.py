"""Cost of op tracing (reference/trace.py): prints the traced-step cost ratio and the overhead with
tracing off.

    python benchmarks/bench_trace.py [--variant mlp.autograd] [--steps 200] [--repeats 5]

off      reference.run(..., trace_steps=None): the harness's only extra work is one `is not None` test
         per step; measured against trace_steps=[] (a Recorder that never switches its mode on, i.e.
         the per-step bookkeeping without any op recorded), best of `repeats`.
traced   every step traced against none: the ratio of wall times per step.
"""
from __future__ import annotations

import argparse
import time

import reference


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", default="mlp.autograd")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    run = lambda **kw: reference.run(args.variant, steps=args.steps, threads=1, **kw)  # noqa: E731
    run()  # warm up
    off = best(lambda: run(), args.repeats)
    idle = best(lambda: run(trace_steps=[]), args.repeats)
    traced = best(lambda: run(trace_steps=range(args.steps)), max(1, args.repeats // 2))
    print(f"{args.variant}, {args.steps} steps, 1 thread, best of {args.repeats}")
    print(f"tracing off:          {off / args.steps * 1e3:.3f} ms/step")
    print(f"recorder, no steps:   {idle / args.steps * 1e3:.3f} ms/step  (ratio {idle / off:.3f})")
    print(f"every step traced:    {traced / args.steps * 1e3:.3f} ms/step  (traced-step cost ratio {traced / off:.1f}x)")


if __name__ == "__main__":
    main()
