"""`compare DIR [DIR ...]`: recorded trajectories side by side, each shared run judged against the first
(the baseline) by the calibrated row of its variant and dtype (reference/judge/recordings.py).
Exit status: 0 something was judged and nothing diverged, 1 something diverged, 2 bad input or
nothing comparable (See Note [one status, four words])."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..files import unwritable_folder
from ..judge.recordings import compare_matrix, labels_for, load_source
from ..report import html, plots, text

DEFAULT_PLOTS = Path("artifacts") / "compare"


def cmd_compare(args: argparse.Namespace) -> int:
    paths = [Path(os.path.expanduser(p)) for p in args.results]
    html_path = None if args.html is None else Path(os.path.expanduser(args.html))
    if html_path is not None and html_path.is_dir():
        raise UsageError(f"--html {args.html} is a directory; name a file, e.g. {html_path / 'compare.html'}")
    sources = [load_source(p, label) for p, label in zip(paths, labels_for(paths))]
    matrix = compare_matrix(sources, retrace=not args.no_retrace)
    lines = text.render(matrix)
    verdict = lines.pop()
    if not args.no_plots and any(cell.differs for _, _, cell in matrix.cells()):
        lines += _write_plots(matrix, Path(os.path.expanduser(args.plots)))
    lines += ["", verdict]
    if html_path is not None:
        lines.append(f"report: {html.write(html_path, matrix)}")
    print("\n".join(lines))
    return matrix.exit_status()


def _write_plots(matrix: Any, folder: Path) -> list[str]:
    problem = unwritable_folder(folder)
    if problem:
        print(f"warning: no plots: {problem}; --plots DIR chooses another folder, --no-plots none", file=sys.stderr)
        return []
    try:
        written, no_matplotlib = plots.write_pngs(matrix, folder)
    except OSError as exc:
        print(f"warning: plots not written: {exc}", file=sys.stderr)
        return []
    lines = []
    if written:
        lines += ["", f"plots of the cells that differ ({len(written)}):", *[f"  {p}" for p in written]]
    if no_matplotlib:
        lines += ["", "no plots: matplotlib is not installed (pip install matplotlib)"]
    return lines


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="compare recorded trajectories (e.g. tox's results/<env>/) side by side",
        description="Compare results directories (or files) written by `tox` / `pytest --record-trajectories`, "
        "`python -m reference run --out` or `check --out`. The first is the baseline; each shared run is judged "
        "by the calibrated row of its variant and dtype. A float32 cell's shadow check needs the float64 run of "
        "the same start in the baseline (or its own) results: record both dtypes. Exit status: 0 something was "
        "judged and nothing diverged, 1 something diverged, 2 bad input or nothing comparable.",
    )
    p.add_argument("results", nargs="+", metavar="DIR", help="results directory (*.json inside) or results file")
    p.add_argument("--plots", default=str(DEFAULT_PLOTS), metavar="DIR",
                   help=f"where the PNGs of the cells that differ go (default: {DEFAULT_PLOTS})")
    p.add_argument("--no-plots", action="store_true", help="write no PNGs")
    p.add_argument("--html", default=None, metavar="FILE",
                   help="also write a self-contained HTML report: the matrix, the picture of each cell that "
                        "differs, the environment of each column")
    p.add_argument("--no-retrace", action="store_true",
                   help="never re-run a run here to trace the step where its cell parts from the baseline "
                        "(by default a run recorded without that trace is re-run when this torch reproduces "
                        "it bitwise)")
    p.set_defaults(func=cmd_compare)
