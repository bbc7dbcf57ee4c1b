"""How fast is the gate, and what does the harness cost? Prints ratios, all measured in one run.

    python benchmarks/bench_gate.py              # everything below (several minutes on 2 cores)
    python benchmarks/bench_gate.py --no-gate    # only the harness overhead

1. The default gate (the README's `pytest -n auto`, Hypothesis `ci` profile) is run twice, with
   `-n N` (N = the CPU count, what `-n auto` picks) and serially, each in a fresh process. A small
   plugin (this file, loaded with `-p bench_gate`) logs every reference.run the tests make.
2. The floor: every distinct run of that log, run once each, one after the other, in one fresh
   Python process at one thread, as in the test session (so it pays for one `import torch` and one
   first-optimizer-step, as any process must). That is the time the variant runs the gate needs would take alone on one core; with N
   workers the best the gate could do is about floor / N plus one process start.
3. The harness: reference.run(variant, threads=1) against the same tutorial loop written bare in
   this file (seeded, the same draws, the same loop, loss.item() only where the tutorial prints),
   alternated; the ratio of the fastest CPU time of each side. The bare loops are checked to give
   the same final loss, bit for bit, as the harness, so they are the same computation.

Speed is measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python benchmarks/bench_gate.py` from a checkout
LOG_ENV = "BENCH_GATE_LOG_DIR"

# --- 1. the pytest plugin (loaded in every worker with -p bench_gate) ---------------------------------


def pytest_configure(config) -> None:
    log_dir = os.environ.get(LOG_ENV)
    is_worker = hasattr(config, "workerinput")
    if not log_dir or (not is_worker and config.getoption("dist", "no") != "no"):
        return  # xdist's controller runs no test (and imports no torch)
    import reference.harness.running as running
    from reference.injections import active

    worker = config.workerinput["workerid"] if is_worker else "main"
    log_path = Path(log_dir) / f"{worker}.pickle"
    original = running.execute
    calls: list[tuple[str, dict, tuple[str, ...], float]] = []

    def logged_execute(p, **options):
        start = time.perf_counter()
        result = original(p, **options)  # failures are not logged
        # replayed as reference.run(variant, **arguments) under the same injections (a changed
        # program: another run, not a repeat); a run given its start (start=) is replayed from its
        # own draw, the same work
        calls.append((p.variant.id, dict(p.arguments(), trace_steps=options.get("trace_steps"),
                                         record_state=options.get("record_state", False)),
                      active(), time.perf_counter() - start))
        return result

    running.execute = logged_execute
    config.add_cleanup(lambda: log_path.write_bytes(pickle.dumps(calls)))


# --- 2. the gate and its floor ---------------------------------------------------------------------


def _children_cpu() -> float:
    """User + system time of the waited-for child processes, their descendants included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_gate(extra: list[str], log_dir: Path, pytest_args: list[str]) -> tuple[float, float, str]:
    """(wall time, CPU time of the whole process tree, pytest's last line)."""
    path = [str(ROOT / "benchmarks"), str(ROOT), os.environ.get("PYTHONPATH")]
    env = dict(os.environ, CI="true", PYTHONPATH=os.pathsep.join(filter(None, path)))
    env[LOG_ENV] = str(log_dir)
    cmd = [sys.executable, "-m", "pytest", "-p", "bench_gate", "-p", "no:cacheprovider", "-q", *extra, *pytest_args]
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    tail = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    if proc.returncode == 1:  # tests failed: the timing stands, but say so
        tail += "  <- NOT GREEN"
    elif proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"the gate did not run ({' '.join(cmd)}): exit {proc.returncode}, {tail}")
    return wall, cpu, tail


@dataclass
class RunLog:
    distinct: list  # every distinct (variant, arguments, injections in effect) of the logs
    made: int = 0  # runs the first log's gate made
    made_s: float = 0.0  # their summed time
    repeated: int = 0  # of those, runs that repeat one already made (by another worker)
    repeated_s: float = 0.0


def read_logs(log_dirs: list[Path]) -> RunLog:
    seen: dict[str, tuple[str, dict, tuple[str, ...]]] = {}  # key -> (variant, arguments, injections)
    log = RunLog([])
    made_in_first: set[str] = set()
    for i, log_dir in enumerate(log_dirs):
        for path in sorted(log_dir.glob("*.pickle")):
            for variant_id, arguments, changes, elapsed in pickle.loads(path.read_bytes()):
                key = repr((variant_id, sorted(arguments.items(), key=lambda kv: kv[0]), changes))
                seen.setdefault(key, (variant_id, arguments, changes))
                if i == 0:
                    log.made += 1
                    log.made_s += elapsed
                    if key in made_in_first:
                        log.repeated += 1
                        log.repeated_s += elapsed
                    made_in_first.add(key)
    log.distinct = list(seen.values())
    return log


FLOOR_SCRIPT = """
import pickle, sys, time
start = time.perf_counter()
import torch
import reference
torch.set_num_threads(1)  # as in the test session (reference/testing/plugin.py)
from contextlib import ExitStack
from reference.injections import INJECTIONS
skipped = 0
for variant_id, arguments, changes in pickle.loads(open(sys.argv[1], "rb").read()):
    try:
        with ExitStack() as stack:
            for name in changes:
                stack.enter_context(INJECTIONS[name]())
            reference.run(variant_id, **arguments)
    except Exception as exc:  # a run that needed its test's surroundings (a temp dir, ...)
        skipped += 1
        print(f"floor: skipped {variant_id} {arguments}: {exc!r}", file=sys.stderr)
print(time.perf_counter() - start, skipped)
"""


def measure_floor(runs: list[tuple[str, dict, tuple[str, ...]]]) -> tuple[float, float, float, int]:
    """(wall time of a fresh process doing every run once, its CPU time, of which the runs after
    the imports (wall), the number of runs that could not be replayed outside their test)."""
    with tempfile.NamedTemporaryFile(suffix=".pickle", delete=False) as f:
        f.write(pickle.dumps(runs))
    try:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run([sys.executable, "-c", FLOOR_SCRIPT, f.name], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        raise SystemExit(f"the floor run failed:\n{proc.stderr[-3000:]}")
    if proc.stderr.strip():
        print(proc.stderr.strip(), file=sys.stderr)
    runs_s, skipped = proc.stdout.split()
    return wall, cpu, float(runs_s), int(skipped)


# --- 3. the harness against bare loops ----------------------------------------------------------------


def bare_mlp_tensor(seed, N=64, D_in=1000, H=100, D_out=10, lr=1e-6, steps=500):
    import torch

    torch.manual_seed(seed)
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)
    w1 = torch.randn(D_in, H)
    w2 = torch.randn(H, D_out)
    for t in range(steps):
        h = x.mm(w1)
        h_relu = h.clamp(min=0)
        y_pred = h_relu.mm(w2)
        loss = (y_pred - y).pow(2).sum().item()  # the tutorial takes .item() every step here
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.t().mm(grad_y_pred)
        grad_h_relu = grad_y_pred.mm(w2.t())
        grad_h = grad_h_relu.clone()
        grad_h[h < 0] = 0
        grad_w1 = x.t().mm(grad_h)
        w1 -= lr * grad_w1
        w2 -= lr * grad_w2
    return loss


def _mlp_model(N, D_in, H, D_out):
    import torch

    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)
    model = torch.nn.Sequential(torch.nn.Linear(D_in, H), torch.nn.ReLU(), torch.nn.Linear(H, D_out))
    return x, y, model


def bare_mlp_nn(seed, N=64, D_in=1000, H=100, D_out=10, lr=1e-4, steps=500):
    import torch

    torch.manual_seed(seed)
    x, y, model = _mlp_model(N, D_in, H, D_out)
    loss_fn = torch.nn.MSELoss(reduction="sum")
    for t in range(steps):
        y_pred = model(x)
        loss = loss_fn(y_pred, y)
        if t % 100 == 99 or t == steps - 1:
            last = loss.item()
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= lr * param.grad
    return last


def bare_mlp_optim(seed, N=64, D_in=1000, H=100, D_out=10, lr=1e-4, steps=500):
    import torch

    torch.manual_seed(seed)
    x, y, model = _mlp_model(N, D_in, H, D_out)
    loss_fn = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for t in range(steps):
        y_pred = model(x)
        loss = loss_fn(y_pred, y)
        if t % 100 == 99 or t == steps - 1:
            last = loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return last


def bare_poly_autograd(seed, points=2000, lr=1e-6, steps=2000):
    import torch

    torch.manual_seed(seed)
    x = torch.linspace(-math.pi, math.pi, points)
    y = torch.sin(x)
    a = torch.randn((), requires_grad=True)
    b = torch.randn((), requires_grad=True)
    c = torch.randn((), requires_grad=True)
    d = torch.randn((), requires_grad=True)
    for t in range(steps):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
        if t % 100 == 99 or t == steps - 1:
            last = loss.item()
        loss.backward()
        with torch.no_grad():
            a -= lr * a.grad
            b -= lr * b.grad
            c -= lr * c.grad
            d -= lr * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    return last


BARE = {
    "mlp.tensor": bare_mlp_tensor,
    "mlp.nn": bare_mlp_nn,
    "mlp.optim": bare_mlp_optim,
    "poly.autograd": bare_poly_autograd,
}


def harness_overhead(repeats: int) -> dict[str, dict[str, float]]:
    """variant -> ratios harness / bare of the fastest of `repeats` alternated runs of each side.

    CPU time (time.process_time; both sides run on one thread) is the primary figure and the
    fastest run the statistic: on a shared machine a run's time is its own work plus whatever
    other processes took from it, and the fastest run is the one they took least from."""
    import torch

    import reference

    torch.set_num_threads(1)
    for vid, bare in BARE.items():
        via_harness = reference.run(vid, threads=1)  # also the warm-up of both sides
        if bare(0) != via_harness.losses[-1]:
            raise SystemExit(f"the bare {vid} loop does not compute what the variant does: "
                             f"{bare(0)!r} != {via_harness.losses[-1]!r}")
    cpu: dict[tuple[str, str], list[float]] = {}
    wall: dict[tuple[str, str], list[float]] = {}
    # round robin over variants and sides, so that a burst of other work on the machine touches
    # every variant's samples alike instead of all the samples of one
    for i in range(repeats):
        for vid, bare in BARE.items():
            order = [("h", lambda: reference.run(vid, threads=1)), ("b", lambda: bare(0))]
            if i % 2:
                order.reverse()
            for side, fn in order:
                c0, w0 = time.process_time(), time.perf_counter()
                fn()
                cpu.setdefault((vid, side), []).append(time.process_time() - c0)
                wall.setdefault((vid, side), []).append(time.perf_counter() - w0)
    return {
        vid: dict(cpu=min(cpu[vid, "h"]) / min(cpu[vid, "b"]), wall=min(wall[vid, "h"]) / min(wall[vid, "b"]),
                  run_s=min(cpu[vid, "h"]), bare_s=min(cpu[vid, "b"]))
        for vid in BARE
    }


# --- report ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-gate", action="store_true", help="skip the gate timings (harness overhead only)")
    parser.add_argument("--no-serial", action="store_true", help="skip the serial gate run")
    parser.add_argument("--repeats", type=int, default=25, help="alternated runs of each side per variant (default 25)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    workers = os.cpu_count() or 1
    figures: dict[str, float] = {}
    print(f"machine: {workers} CPUs; python {sys.version.split()[0]}")

    if not args.no_gate:
        with tempfile.TemporaryDirectory() as tmp:
            par_log, ser_log = Path(tmp) / "parallel", Path(tmp) / "serial"
            par_log.mkdir()
            ser_log.mkdir()
            par_wall, par_cpu, par_tail = run_gate(["-n", str(workers)], par_log, args.pytest_args)
            print(f"gate, -n {workers} (= -n auto): {par_wall:6.1f} s wall, {par_cpu:6.1f} s CPU   [{par_tail}]")
            if not args.no_serial:
                ser_wall, ser_cpu, ser_tail = run_gate([], ser_log, args.pytest_args)
                print(f"gate, serial:          {ser_wall:6.1f} s wall, {ser_cpu:6.1f} s CPU   [{ser_tail}]")
            log = read_logs([par_log] + ([] if args.no_serial else [ser_log]))
            floor_wall, floor_cpu, floor_runs, skipped = measure_floor(log.distinct)
            print(f"floor: the {len(log.distinct)} distinct variant runs, alone in one process: "
                  f"{floor_wall:6.1f} s wall, {floor_cpu:6.1f} s CPU ({floor_runs:.1f} s after the imports"
                  + (f"; {skipped} not replayable, left out)" if skipped else ")"))
            print(f"  the -n {workers} gate made {log.made} runs, {log.made_s:.1f} s summed over its workers; "
                  f"{log.repeated} of them ({log.repeated_s:.1f} s) repeat a run another worker made too")
        figures.update(gate_parallel_s=par_wall, gate_parallel_cpu_s=par_cpu, floor_s=floor_wall,
                       floor_cpu_s=floor_cpu, distinct_runs=len(log.distinct), runs_made=log.made,
                       runs_repeated=log.repeated)
        print()
        print(f"gate (-n {workers}) / floor:      {par_wall / floor_wall:5.2f}x wall   (goal: at most 0.6x)")
        print(f"                            {par_cpu / floor_cpu:5.2f}x CPU    (goal: at most 1.3x; what the gate "
              f"spends beyond its runs, however busy the machine)")
        if not args.no_serial:
            figures.update(gate_serial_s=ser_wall, gate_serial_cpu_s=ser_cpu)
            print(f"gate serial / floor:        {ser_wall / floor_wall:5.2f}x wall, {ser_cpu / floor_cpu:5.2f}x CPU")
            print(f"serial / -n {workers}:             {ser_wall / par_wall:5.2f}x wall   (speed-up from xdist)")
        print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print()

    overhead = harness_overhead(args.repeats)
    print(f"harness: reference.run against the bare tutorial loop, threads=1, fastest of {args.repeats} each")
    print(f"  {'variant':<14} {'CPU time':>17} {'(wall time)':>12}   {'run':>9} {'bare':>9}  (CPU)")
    for vid, f in overhead.items():
        print(f"  {vid:<14} {f['cpu']:6.3f}x ({(f['cpu'] - 1) * 100:+5.1f} %) {(f['wall'] - 1) * 100:+10.1f} %"
              f"   {f['run_s'] * 1e3:6.0f} ms {f['bare_s'] * 1e3:6.0f} ms")
        figures[f"harness_cpu_{vid}"] = f["cpu"]
        figures[f"harness_wall_{vid}"] = f["wall"]
    worst = max(f["cpu"] for f in overhead.values())
    print(f"  worst (CPU time): {(worst - 1) * 100:+.1f} %   (goal: under +5 %)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
