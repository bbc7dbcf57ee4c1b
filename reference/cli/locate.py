"""python -m reference locate ID: name the operation where two runs of one step part ways.

    locate ID [--step N]                   CPU against CPU (identical runs: no differing op)
    locate ID --device cuda                the same step on CUDA against the CPU, from the same start
    locate ID --inject NAME                the same step under a change of reference.injections
    locate ID --against FILE [--out FILE]  against a trace another torch wrote with --out

Prints one line (`first differing op: aten::<name> at step <N> (<phase>) ...`, `first difference:
initial state (...)` or `no differing op in the traced steps`). Exit status: 0 no difference,
1 a difference, 2 bad input.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import trace
from ..errors import UsageError
from ..files import atomic_write
from ..harness.planning import plan
from ..injections import INJECTIONS
from ..judge.locate import traced_run
from .arguments import parse_override


def cmd_locate(args: argparse.Namespace) -> int:
    overrides = dict(parse_override(s, args.id) for s in args.set)
    run_args = dict(seed=args.seed, dtype=args.dtype, threads=args.threads, **overrides)
    if args.step < 0:
        raise UsageError(f"--step must be >= 0, got {args.step}")
    p = plan(args.id, device=args.device, steps=args.step + 1, **run_args)  # checks device, dtype, ...
    if args.inject is not None and args.inject not in INJECTIONS:
        raise UsageError(f"--inject {args.inject!r} is not an injection. Valid choices: " + "; ".join(INJECTIONS))
    if args.out is not None and Path(args.out).exists() and not args.overwrite:
        raise UsageError(f"--out {args.out} exists; pass --overwrite to replace it")
    if args.against is not None:
        try:
            baseline = trace.loads(Path(args.against).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--against {args.against}: not an op trace ({exc})") from None
        if str(args.step) not in baseline["steps"]:
            raise UsageError(f"--against {args.against} traces steps {', '.join(baseline['steps'])}, not step {args.step}")
    else:
        baseline = traced_run(args.id, args.step, device="cpu", **run_args)
    if args.inject is not None:
        with INJECTIONS[args.inject]():
            now = traced_run(args.id, args.step, device=args.device, **run_args)
    else:
        now = traced_run(args.id, args.step, device=args.device, **run_args)
    finding = trace.compare_traces(baseline, now, p.dtype)
    print(finding.line())
    if args.out is not None:
        text = trace.dumps(now)
        atomic_write(Path(args.out), lambda f: f.write(text.encode()), overwrite=args.overwrite)
        print(f"wrote {args.out} (the trace of step {args.step}: `locate {args.id} --step {args.step} --against "
              f"{args.out}` compares another torch's run with it)")
    return 1 if finding.found else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "locate", help="name the first op whose output differs: CUDA vs CPU, an injected change, another torch",
        description=__doc__.split("\n\n")[0] + " Exit status: 0 no difference, 1 a difference, 2 bad input.",
    )
    p.add_argument("id", metavar="ID", help="variant id (see `list`)")
    p.add_argument("--device", default="cpu", help="the device traced against the CPU (default: cpu)")
    p.add_argument("--dtype", default=None, help="float32 or float64 (default: the tutorial's own)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--step", type=int, default=0, help="the step to trace (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a hyperparameter")
    p.add_argument("--inject", default=None, metavar="NAME",
                   help="trace under this change of reference/injections.py: " + "; ".join(INJECTIONS))
    p.add_argument("--against", default=None, metavar="FILE", help="baseline trace written by --out (e.g. another torch)")
    p.add_argument("--out", default=None, metavar="FILE", help="write this run's trace (JSON)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing file")
    p.set_defaults(func=cmd_locate)
