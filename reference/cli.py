"""python -m reference (also installed as `torch-examples-spec`): list, run, compare."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from .catalogue import load_variants, lookup
from .harness import Trajectory, execute, plan, save_trajectories


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""


def _parse_override(text: str, variant_id: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--set expects NAME=VALUE, got {text!r}")
    hp = lookup(variant_id).hyperparameters
    default = hp.get(name)
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false"):
            raise UsageError(f"--set {name} expects true or false, got {raw!r}")
        return name, raw.lower() == "true"
    if isinstance(default, (int, float)):
        try:
            value = float(raw)
        except ValueError:
            raise UsageError(f"--set {name} expects a number, got {raw!r}") from None
        return name, int(value) if isinstance(default, int) and value.is_integer() else value
    return name, raw  # strings, and unknown names (run() reports those with the valid choices)


def cmd_list(args: argparse.Namespace) -> int:
    variants = load_variants()
    width = max(map(len, variants))
    for v in variants.values():
        print(f"{v.id:<{width}}  {v.title}")
        print(f"{'':<{width}}    {v.demonstrates}")
        print(f"{'':<{width}}    sources: {'; '.join(v.sources)}")
    return 0


def _progress_bar(done: int, total: int, label: str) -> None:
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<24}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _print_table(trajectories: list[Trajectory]) -> None:
    header = ("variant", "device", "dtype", "seed", "steps", "first loss", "last loss", "wall s")
    rows = [
        (t.variant, t.device, t.dtype, str(t.seed), str(t.steps), f"{t.losses[0]:.6g}",
         f"{t.losses[-1]:.6g}", f"{t.wall_time_s:.2f}")
        for t in trajectories
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _mnist_root(cli_value: str | None) -> str:
    from .mnist import resolve_root

    return resolve_root(cli_value)


def cmd_run(args: argparse.Namespace) -> int:
    variants = load_variants()
    if args.all and args.ids:
        raise UsageError("give variant ids or --all, not both")
    ids = list(variants) if args.all else args.ids
    if not ids:
        raise UsageError("name at least one variant id (see `python -m reference list`) or pass --all")
    for vid in ids:
        lookup(vid)  # fail on a bad id before running anything
    if args.out is not None and Path(args.out).exists() and not args.overwrite:
        raise UsageError(f"--out {args.out} exists; pass --overwrite to replace it")
    overrides_by_id = {vid: dict(_parse_override(s, vid) for s in args.set) for vid in ids}
    for vid in ids:
        if lookup(vid).family == "mnist":
            overrides_by_id[vid].setdefault("data_root", _mnist_root(args.mnist_root))
    run_args = dict(seed=args.seed, device=args.device, dtype=args.dtype, steps=args.steps, threads=args.threads)
    for vid in ids:
        plan(vid, **run_args, **overrides_by_id[vid])  # every argument checked before the first run
    show_progress_bar = len(ids) > 1
    trajectories = []
    for i, vid in enumerate(ids):
        if show_progress_bar:
            _progress_bar(i, len(ids), vid)
            on_step = None
        else:
            print(f"{vid} (seed {args.seed}, {args.device}, {args.dtype or 'tutorial dtype'})")

            def on_step(t: int, loss: float) -> None:
                if t % 100 == 99:
                    print(t, loss)

        trajectories.append(execute(vid, on_step=on_step, **run_args, **overrides_by_id[vid]))
        if lookup(vid).family == "mnist" and not show_progress_bar:
            from .mnist import run_report

            print(run_report(trajectories[-1]))
    if show_progress_bar:
        _progress_bar(len(ids), len(ids), "done")
    print()
    _print_table(trajectories)
    if args.out is not None:
        save_trajectories(args.out, trajectories, overwrite=args.overwrite)
        print(f"\nwrote {len(trajectories)} trajectories to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference",
        description="Run the 'Learning PyTorch with Examples' reference variants.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,run,compare,locate}")

    p_list = sub.add_parser("list", help="list the variant ids, what each shows, and its sources")
    p_list.set_defaults(func=cmd_list)

    p_run = sub.add_parser("run", help="run variants and print their losses and a summary table")
    p_run.add_argument("ids", nargs="*", metavar="ID", help="variant ids (see `list`)")
    p_run.add_argument("--all", action="store_true", help="run every variant")
    p_run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p_run.add_argument("--dtype", default=None, help="float32 or float64 (default: the tutorial's own)")
    p_run.add_argument("--seed", type=int, default=0, help="seed for torch, random and NumPy (default: 0)")
    p_run.add_argument("--steps", type=int, default=None, help="number of steps (default: the tutorial's)")
    p_run.add_argument("--threads", type=int, default=1,
                       help="torch thread count for the run (default: 1, the goldens' setting; "
                            "more threads never help at these sizes)")
    p_run.add_argument("--mnist-root", default=None, metavar="DIR",
                       help="directory of the MNIST IDX files for mnist.* variants "
                            "(default: $MNIST_ROOT, else the embedded digits)")
    p_run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override a hyperparameter, e.g. --set lr=1e-6 (repeatable)")
    p_run.add_argument("--out", default=None, metavar="FILE.json", help="write the trajectories as JSON")
    p_run.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing file")
    p_run.set_defaults(func=cmd_run)

    try:
        from .compare import add_compare_parser
    except ImportError:
        pass
    else:
        add_compare_parser(sub)
    from .locate import add_locate_parser

    add_locate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
