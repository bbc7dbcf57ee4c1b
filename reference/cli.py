"""python -m reference (also installed as `torch-examples-spec`): list, run, compare."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .catalogue import cite, lesson_order, load_variants, lookup, main_line
from .compare import add_compare_parser
from .errors import UsageError
from .files import unwritable_folder
from .harness import SEED_LIMIT, Trajectory, execute, plan, resolve_hyperparameters
from .trajectory import save_trajectories

__all__ = ["UsageError", "build_parser", "main"]

# `run` arguments that have their own flag: `--set steps=5` is pointed to `--steps 5`
RUN_FLAGS = {"steps": "--steps", "seed": "--seed", "device": "--device", "dtype": "--dtype",
             "threads": "--threads"}


def _parse_override(text: str, variant_id: str) -> tuple[str, Any]:
    """NAME=VALUE of --set, checked against the variant's hyperparameters (name, type and range)."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--set expects NAME=VALUE, got {text!r}")
    if name in RUN_FLAGS:
        raise UsageError(f"--set {text}: {name} is not a hyperparameter; use {RUN_FLAGS[name]} {raw or 'VALUE'}")
    variant = lookup(variant_id)
    hp = variant.hyperparameters
    if name not in hp:
        valid = [k for k in hp if k != "steps"]
        raise UsageError(f"--set {text}: {variant_id} has no hyperparameter {name!r}. "
                         f"Valid choices: {', '.join(valid)}")
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
        value = int(value) if isinstance(default, int) and value.is_integer() and abs(value) < 2**63 else value
    else:
        value = raw
    try:
        resolve_hyperparameters(variant, {name: value})
    except ValueError as exc:
        raise UsageError(f"--set {text}: {exc}") from None
    return name, value


def cmd_list(args: argparse.Namespace) -> int:
    order = lesson_order()
    families = list(dict.fromkeys(v.family for v in order))
    print("Lesson order, the tutorial's main line of each family (side branches: see the after column):")
    for family in families:
        print(f"  {family}: {' -> '.join(main_line(family))}")
    print()
    after = {v.id: (v.after or "-") + (" (side branch)" if v.side_branch else "") for v in order}
    width = max(map(len, after))
    after_width = max(len("after"), *map(len, after.values()))
    print(f"{'variant':<{width}}  {'after':<{after_width}}  title")
    for v in order:
        print(f"{v.id:<{width}}  {after[v.id]:<{after_width}}  {v.title}")
        print(f"{'':<{width}}    {v.demonstrates}")
        print(f"{'':<{width}}    sources: {'; '.join(map(cite, v.sources))}")
    print("\nThe sources, with what each covers: specs/sources.toml")
    return 0


_bar_open = False  # a progress bar line on stderr awaits its newline


def _progress_bar(done: int, total: int, label: str) -> None:
    global _bar_open
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<24}")
    _bar_open = done != total
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _end_progress_line() -> None:
    """So that an error starts on a line of its own."""
    global _bar_open
    if _bar_open:
        sys.stderr.write("\n")
        sys.stderr.flush()
        _bar_open = False


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


def _mnist_root(cli_value: str | None) -> tuple[str, str]:
    """(data_root, where it came from) for mnist.* runs: --mnist-root, else $MNIST_ROOT, else ""."""
    from .mnist import ENV_VAR, resolve_root

    root = os.path.expanduser(resolve_root(cli_value))
    where = f"--mnist-root {root}" if cli_value is not None else f"{ENV_VAR}={root}"
    return root, where


def _check_mnist_root(root: str, where: str) -> None:
    from .mnist import check_root

    try:
        check_root(root)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc} (the four MNIST IDX files, raw or .gz; "
                         f"unset it for the embedded digits)") from None


def _is_read_only(path: Path) -> bool:
    mode = path.stat().st_mode
    return not mode & 0o200 or not os.access(path, os.W_OK)


def output_file(value: str, flag: str, *, overwrite: bool) -> Path:
    """The file `flag` names, checked before any work: not a directory, replaceable only with
    --overwrite and if writable, its directory created (or refused with the reason) and writable."""
    path = Path(os.path.expanduser(value))
    if value.endswith(("/", os.sep)) or path.is_dir():
        raise UsageError(f"{flag} {value}: is a directory; give a file name, e.g. {flag} "
                         f"{(value.rstrip('/' + os.sep) or '.')}/results.json")
    if path.exists():
        if not overwrite:
            raise UsageError(f"{flag} {value} exists; pass --overwrite to replace it")
        if _is_read_only(path):
            raise UsageError(f"{flag} {value} is read-only; not replaced (make it writable, or choose another file)")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{flag} {value}: {ancestor} is a file, not a directory")
    problem = unwritable_folder(path.parent)
    if problem:
        raise UsageError(f"{flag} {value}: {problem}")
    return path


def _check_run_flags(args: argparse.Namespace) -> None:
    """The flags' own ranges, in the flags' words (plan() checks them again for the API)."""
    if not 0 <= args.seed < SEED_LIMIT:
        raise UsageError(f"--seed {args.seed}: must be from 0 to {SEED_LIMIT - 1} "
                         "(NumPy's seeding accepts no more than 32 bits)")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps {args.steps}: must be 1 or more")
    if args.threads < 1:
        raise UsageError(f"--threads {args.threads}: must be 1 or more")


def cmd_run(args: argparse.Namespace) -> int:
    variants = load_variants()
    if args.all and args.ids:
        raise UsageError("give variant ids or --all, not both")
    ids = list(variants) if args.all else args.ids
    if not ids:
        raise UsageError("name at least one variant id (see `python -m reference list`) or pass --all")
    for vid in ids:
        lookup(vid)  # fail on a bad id before running anything
    _check_run_flags(args)
    overrides_by_id = {vid: dict(_parse_override(s, vid) for s in args.set) for vid in ids}
    if any(lookup(vid).family == "mnist" for vid in ids):
        root, where = _mnist_root(args.mnist_root)
        if root:
            _check_mnist_root(root, where)
        for vid in ids:
            if lookup(vid).family == "mnist":
                overrides_by_id[vid].setdefault("data_root", root)
    run_args = dict(seed=args.seed, device=args.device, dtype=args.dtype, steps=args.steps, threads=args.threads,
                    compile=args.compile)
    plans = {}
    for vid in ids:
        try:
            plans[vid] = plan(vid, **run_args, **overrides_by_id[vid])  # every argument checked before the first run
        except ValueError as exc:
            raise UsageError(f"{vid}: {exc}") from None
    out = None if args.out is None else output_file(args.out, "--out", overwrite=args.overwrite)
    show_progress_bar = len(ids) > 1
    trajectories: list[Trajectory] = []
    try:
        for i, vid in enumerate(ids):
            if show_progress_bar:
                _progress_bar(i, len(ids), vid)
                on_step = None
            else:
                print(f"{vid} (seed {args.seed}, {args.device}, {args.dtype or 'tutorial dtype'})")

                def on_step(t: int, loss: float) -> None:
                    if t % 100 == 99:
                        print(t, loss)

            trajectories.append(execute(plans[vid], on_step=on_step))
            if lookup(vid).family == "mnist" and not show_progress_bar:
                from .mnist import run_report

                print(run_report(trajectories[-1]))
            if lookup(vid).family == "poly" and not show_progress_bar:
                from .result_line import result_line

                print(result_line(trajectories[-1]))
    except BaseException:
        _end_progress_line()
        _keep_finished(trajectories, len(ids), out, args.overwrite)
        raise
    if show_progress_bar:
        _progress_bar(len(ids), len(ids), "done")
    print()
    _print_table(trajectories)
    if out is not None:
        save_trajectories(out, trajectories, overwrite=args.overwrite)
        print(f"\nwrote {len(trajectories)} trajectories to {out}")
    return 0


def _keep_finished(trajectories: list[Trajectory], total: int, out: Path | None, overwrite: bool) -> None:
    """A run stopped part-way: show and keep what finished, and say where it is."""
    if not trajectories:
        return
    print()
    _print_table(trajectories)
    where = "above"
    if out is not None:
        try:
            save_trajectories(out, trajectories, overwrite=overwrite)
            where = f"in {out}"
        except OSError as exc:
            where = f"above (not written to {out}: {exc})"
    sys.stdout.flush()
    print(f"stopped after {len(trajectories)} of {total} variants; the finished trajectories are {where}",
          file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference",
        description="Run the 'Learning PyTorch with Examples' reference variants.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,run,compare,check,locate}")

    p_list = sub.add_parser("list", help="list the variants in lesson order: what each follows, shows, and its sources")
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
    p_run.add_argument("--compile", default=None, metavar="BACKEND",
                       help="run the model (and optimizer step) through torch.compile with this backend: "
                            "aot_eager or inductor (default: eager); variants with an nn.Module only")
    p_run.add_argument("--mnist-root", default=None, metavar="DIR",
                       help="directory of the MNIST IDX files for mnist.* variants "
                            "(default: $MNIST_ROOT, else the embedded digits)")
    p_run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override a hyperparameter, e.g. --set lr=1e-6 (repeatable)")
    p_run.add_argument("--out", default=None, metavar="FILE.json", help="write the trajectories as JSON")
    p_run.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing file")
    p_run.set_defaults(func=cmd_run)

    add_compare_parser(sub)
    from .check import add_check_parser  # check imports no CLI module: no cycle

    add_check_parser(sub)
    from .locate import add_locate_parser

    add_locate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        return 0
    except (UsageError, ValueError, OSError) as exc:
        _end_progress_line()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _end_progress_line()
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
