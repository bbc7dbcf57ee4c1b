"""`run`: run variants from a seeded start, print their losses and a summary table, and keep the
trajectories (--out) for `compare`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..catalogue import load_variants, lookup
from ..errors import UsageError
from ..harness.running import execute
from ..harness.planning import BadArgument, plan
from ..harness.trajectory import Trajectory, save_trajectories
from ..judge.locate import record_departures
from ..judge.rules import trace_steps as kept_trace_steps
from ..report.table import table
from .arguments import output_file, parse_override, progress, size_text


def _print_table(trajectories: list[Trajectory]) -> None:
    rows = [(t.variant, t.device, t.dtype, str(t.seed), str(t.steps), f"{t.losses[0]:.6g}",
             f"{t.losses[-1]:.6g}", f"{t.wall_time_s:.2f}") for t in trajectories]
    print("\n".join(table(("variant", "device", "dtype", "seed", "steps", "first loss", "last loss", "wall s"), rows)))


def _mnist_root(cli_value: str | None) -> tuple[str, str]:
    """(data_root, where it came from) for mnist.* runs: --mnist-root, else $MNIST_ROOT, else ""."""
    from ..mnist import ENV_VAR, resolve_root

    root = os.path.expanduser(resolve_root(cli_value))
    where = f"--mnist-root {root}" if cli_value is not None else f"{ENV_VAR}={root}"
    return root, where


def _check_mnist_root(root: str, where: str) -> None:
    from ..mnist import check_root

    try:
        check_root(root)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc} (the four MNIST IDX files, raw or .gz; "
                         f"unset it for the embedded digits)") from None


def _plans(args: argparse.Namespace, ids: list[str]) -> list[tuple[str, Any]]:
    """Every run's (variant, plan), each argument judged by plan() before the first run; --dtype both:
    a run per dtype the variant supports."""
    overrides_by_id = {vid: dict(parse_override(s, vid) for s in args.set) for vid in ids}
    if any(lookup(vid).family == "mnist" for vid in ids):
        root, where = _mnist_root(args.mnist_root)
        if root:
            _check_mnist_root(root, where)
        for vid in ids:
            if lookup(vid).family == "mnist":
                overrides_by_id[vid].setdefault("data_root", root)
    run_args = dict(seed=args.seed, device=args.device, steps=args.steps, threads=args.threads, compile=args.compile)
    plans = []
    for vid in ids:
        for dtype in (lookup(vid).dtypes if args.dtype == "both" else [args.dtype]):
            try:
                plans.append((vid, plan(vid, dtype=dtype, **run_args, **overrides_by_id[vid])))
            except BadArgument as exc:  # a flag's own range, in the flag's words
                raise UsageError(f"--{exc.argument} {exc.value}: must be {exc.requirement}") from None
            except ValueError as exc:
                raise UsageError(f"{vid}: {exc}") from None
    return plans


def cmd_run(args: argparse.Namespace) -> int:
    variants = load_variants()
    if args.all and args.ids:
        raise UsageError("give variant ids or --all, not both")
    ids = list(variants) if args.all else args.ids
    if not ids:
        raise UsageError("name at least one variant id (see `python -m reference list`) or pass --all")
    for vid in ids:
        lookup(vid)  # fail on a bad id before running anything
    plans = _plans(args, ids)
    out = None if args.out is None else output_file(args.out, "--out", overwrite=args.overwrite)
    several = len(plans) > 1
    trajectories: list[Trajectory] = []
    try:
        for i, (vid, p) in enumerate(plans):
            if several:
                progress.bar(i, len(plans), f"{vid} {p.dtype}")
                on_step = None
            else:
                print(f"{vid} (seed {args.seed}, {args.device}, {args.dtype or 'tutorial dtype'})")

                def on_step(t: int, loss: float) -> None:
                    if t % 100 == 99:
                        print(t, loss)

            # kept for compare: the state fingerprints, and the op traces of the first steps (as the goldens keep)
            traced = None if out is None or p.compile is not None else range(min(kept_trace_steps(), p.steps))
            trajectories.append(execute(p, on_step=on_step, record_state=out is not None, trace_steps=traced))
            if lookup(vid).family == "mnist" and not several:
                from ..mnist import run_report

                print(run_report(trajectories[-1]))
            if lookup(vid).family == "poly" and not several:
                from ..result_line import result_line

                print(result_line(trajectories[-1]))
    except BaseException:
        progress.end()
        _keep_finished(trajectories, len(plans), out, args)
        raise
    if several:
        progress.bar(len(plans), len(plans), "done")
    print()
    _print_table(trajectories)
    if out is not None:
        # a run that parts from its golden keeps the trace of where it parts (a re-run to that step)
        trajectories = record_departures(trajectories)
        size = save_trajectories(out, trajectories, overwrite=args.overwrite, full_params=args.full_params)
        print(f"\nwrote {len(trajectories)} trajectories to {out} ({size_text(size)}"
              + ("; final parameters in full" if args.full_params else "; final parameters as digest and record, "
                 "--full-params keeps every value") + ")")
    return 0


def _keep_finished(trajectories: list[Trajectory], total: int, out: Path | None, args: argparse.Namespace) -> None:
    """A run stopped part-way: show and keep what finished, and say where it is."""
    if not trajectories:
        return
    print()
    _print_table(trajectories)
    where = "above"
    if out is not None:
        try:
            save_trajectories(out, trajectories, overwrite=args.overwrite, full_params=args.full_params)
            where = f"in {out}"
        except OSError as exc:
            where = f"above (not written to {out}: {exc})"
    sys.stdout.flush()
    print(f"stopped after {len(trajectories)} of {total} runs; the finished trajectories are {where}",
          file=sys.stderr)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run variants and print their losses and a summary table")
    p.add_argument("ids", nargs="*", metavar="ID", help="variant ids (see `list`)")
    p.add_argument("--all", action="store_true", help="run every variant")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--dtype", default=None,
                   help="float32, float64, or both (a run in each dtype the variant has: what `compare`'s float32 "
                        "shadow check needs); default: the tutorial's own")
    p.add_argument("--seed", type=int, default=0, help="seed for torch, random and NumPy (default: 0)")
    p.add_argument("--steps", type=int, default=None, help="number of steps (default: the tutorial's)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch thread count for the run (default: 1, the goldens' setting; "
                        "more threads never help at these sizes)")
    p.add_argument("--compile", default=None, metavar="BACKEND",
                   help="run the model (and optimizer step) through torch.compile with this backend: "
                        "aot_eager or inductor (default: eager); variants with an nn.Module only")
    p.add_argument("--mnist-root", default=None, metavar="DIR",
                   help="directory of the MNIST IDX files for mnist.* variants "
                        "(default: $MNIST_ROOT, else the embedded digits)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a hyperparameter, e.g. --set lr=1e-6 (repeatable)")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="write the trajectories as JSON, for `compare` (final parameters as a digest and a record)")
    p.add_argument("--full-params", action="store_true",
                   help="with --out: keep every final parameter value (MNIST's make ~15 MB a run)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing file")
    p.set_defaults(func=cmd_run)
