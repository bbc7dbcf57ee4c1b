"""Cost of op tracing (reference/trace/): prints the traced-step cost ratio and the overhead with
tracing off.

    python benchmarks/bench_trace.py [--variant mlp.autograd] [--steps 200] [--repeats 5]

off      reference.run(..., trace_steps=None): the harness's only extra work is one `is not None` test
         per step; measured against trace_steps=[] (a Recorder that never switches its mode on, i.e.
         the per-step bookkeeping without any op recorded), best of `repeats`.
traced   every step traced against none: the ratio of wall times per step.
departure  what `pytest --record-trajectories` adds for a run that leaves its golden
         (reference.judge.locate.record_departure): a re-run up to the departing steps, two of them
         traced; timed for mlp.autograd float32 under the clamp change that stands in for torch 2.14
         (on torch 2.14 itself the change is a no-op: nothing departs, and it says so).

The machine's load average is printed beside the figures (a shared machine is noisy).
"""
from __future__ import annotations

import argparse
import os
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
    departure_cost()
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs")


def departure_cost() -> None:
    """The recording's extra cost for one run that leaves its golden (a golden written here)."""
    import tempfile

    from reference.judge import goldens as golden
    from reference.judge.locate import record_departure
    from reference.injections import INJECTIONS

    with tempfile.TemporaryDirectory() as root:
        old = os.environ.get(golden.GOLDENS_DIR_ENV)
        os.environ[golden.GOLDENS_DIR_ENV] = root
        try:
            plain = reference.run("mlp.autograd", threads=1, record_state=True)
            golden.write(golden.GoldenKey("mlp.autograd", "float32", 0), plain)
            with INJECTIONS["clamp(min=0) grad at 0: 1 -> 0 (relu's)"]():
                changed = reference.run("mlp.autograd", threads=1, trace_steps=[0, 1], record_state=True)
                t0 = time.perf_counter()
                recorded = record_departure(changed)
                spent = time.perf_counter() - t0
        finally:
            if old is None:
                del os.environ[golden.GOLDENS_DIR_ENV]
            else:
                os.environ[golden.GOLDENS_DIR_ENV] = old
    k = recorded.trace.get("departs_from_golden")
    if k is None:
        from reference.facts import clamp_passes_gradient_at_zero

        why = ("the clamp change is a no-op on this torch, whose clamp already has relu's gradient at 0 "
               "(See Note [clamp gradient at 0])" if not clamp_passes_gradient_at_zero()
               else "the changed run did not leave its golden, or its departure did not reproduce")
        print(f"departure trace:      nothing to time: {why}")
        return
    print(f"departure trace:      {spent:.2f} s for mlp.autograd float32 leaving its golden at loss {k} "
          f"(the run's own {changed.wall_time_s:.2f} s for {changed.steps} steps)")


if __name__ == "__main__":
    main()
