"""torch.compile's cost and pay-off on the tutorial's models: compile time (cold and warm cache) and
step time, compiled vs eager, per variant. Prints figures; asserts nothing.

    python benchmarks/bench_compile.py                              # every compilable variant, float32
    python benchmarks/bench_compile.py --variants mlp.nn,poly.nn --backends inductor --steps 200

Each measurement is a fresh process at one thread (what `import torch` and dynamo's import cost is
left out: the clock starts at the run). Cold: an empty TORCHINDUCTOR_CACHE_DIR; warm: the same
directory again, as a second `pytest -m compile` finds it.

  compile s   the run's wall time minus steps x its steady step time (recompiles included)
  step ms     the median step over the second half of the run (forward, backward, update)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(variant_id: str, dtype: str, backend: str | None, steps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from reference.harness import execute, plan

    marks: list[float] = []
    start = time.perf_counter()
    t = execute(plan(variant_id, dtype=dtype, steps=steps, threads=1, compile=backend),
                on_step=lambda step, loss: marks.append(time.perf_counter()))
    total = marks[-1] - start
    steps_s = [b - a for a, b in zip([start, *marks[:-1]], marks)]
    steady = statistics.median(steps_s[len(steps_s) // 2:])
    return {"total_s": total, "step_s": steady, "compile_s": max(total - steady * len(steps_s), 0.0),
            "stats": t.compile_stats}


def measure(variant_id: str, dtype: str, backend: str | None, steps: int, cache: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--child", variant_id, dtype, backend or "eager", str(steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        vid, dtype, backend, steps = sys.argv[2:6]
        print(json.dumps(child(vid, dtype, None if backend == "eager" else backend, int(steps))))
        return 0
    from reference.harness.compiling import BACKENDS, compilable_variants, unavailable_reason

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(compilable_variants()))
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--steps", type=int, default=100, help="steps a run (MNIST: at most its 48 golden steps)")
    args = ap.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    for b in backends:
        if unavailable_reason(b):
            raise SystemExit(f"{b}: {unavailable_reason(b)}")

    import torch

    print(f"torch {torch.__version__}, {args.dtype}, 1 thread, {args.steps} steps a run, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    header = f"{'variant':22} {'backend':9} {'cold s':>7} {'warm s':>7} {'eager ms':>9} {'compiled ms':>11} " \
             f"{'speed-up':>8}  graphs/breaks/recompiles"
    print(header)
    print("-" * len(header))
    for vid in [v for v in args.variants.split(",") if v]:
        steps = min(args.steps, 48) if vid.startswith("mnist") else args.steps
        with tempfile.TemporaryDirectory(prefix="bench-compile-") as cache:
            eager = measure(vid, args.dtype, None, steps, cache)
            for backend in backends:
                cold = measure(vid, args.dtype, backend, steps, cache)
                warm = measure(vid, args.dtype, backend, steps, cache)
                s = warm["stats"]
                print(f"{vid:22} {backend:9} {cold['compile_s']:7.1f} {warm['compile_s']:7.1f} "
                      f"{eager['step_s'] * 1e3:9.3f} {warm['step_s'] * 1e3:11.3f} "
                      f"{eager['step_s'] / warm['step_s']:7.2f}x  "
                      f"{s.get('graphs')}/{s.get('graph_breaks')}/{s.get('recompiles')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
