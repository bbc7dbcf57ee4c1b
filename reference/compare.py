"""python -m reference compare DIR [DIR ...]: recorded trajectories side by side, judged by the policy.

Each DIR holds results files in the save_trajectories format ({"schema": 1, "trajectories": [...]}),
for instance results/torch213/ as `tox -e torch213` writes it (`pytest --record-trajectories DIR`:
one file per pytest worker, the final parameters kept as digests); a single results FILE.json
(from `python -m reference run --out`) works too. The output is a matrix:

  rows     one run: variant, dtype, seed (and steps or hyperparameters where they are not the defaults)
  columns  one per results DIR and device (results/torch214 recorded on cpu and cuda gives two), and
           per torch.compile mode: compiled runs get their own column (cpu+inductor), so that
           `compare results/torch213 results/torch213-compile results/torch214-compile` judges
           compiled runs against eager ones, across versions
  cells    the first column is the baseline; every other cell is judged against it with
           reference.policy.compare, exactly as the golden tests judge a run against its golden:
             exact            losses and final parameters bitwise equal
             close 3.1e-07    within the policy; the largest relative loss difference
             close *          losses bitwise equal, final parameters not
             DIVERGED @43 1.6e-02   beyond the policy: the first step outside it, the largest difference
             -                this column has no such run

For a float32 (or CUDA) cell the policy also measures the run's distance from the float64 trajectory
of the same start; that is the baseline column's float64 run of the variant and seed (as the golden
tests use the float64 golden), or failing that the cell's own column's.

Under every cell that is not exact, the op where the two runs part (reference.trace), traced at the
steps where their losses part: from the results where recorded (a recording keeps the first steps,
and the steps where a run leaves its golden), else by re-running that run here when this torch
reproduces its losses bitwise through those steps (reference.departure; the output says which;
--no-retrace: never re-run).

A PNG of the loss curves and their relative differences is written for every row with a cell that is
not exact (a folder that cannot be written is a warning; the matrix still prints). Below the matrix,
the environment keys (reference.environment: CPU model and flags, BLAS and oneDNN builds and kernel
paths, steering variables) by which a column differs from the baseline. Exit status: 0 nothing
diverged, 1 something diverged (both only for a judgement made), 2 bad input or nothing comparable.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from . import policy, report
from .catalogue import load_variants
from .departure import locate_cell
from .errors import UsageError
from . import trajectory as trajectory_files
from .harness import Trajectory

DEFAULT_PLOTS = Path("artifacts") / "compare"


@dataclass(frozen=True, order=True)
class RowKey:
    """What makes two trajectories comparable: the same run asked for on another version or device."""

    variant: str
    dtype: str
    seed: int
    steps: int
    hyperparameters: str  # canonical JSON

    def label(self) -> str:
        text = f"{self.variant} {self.dtype} seed {self.seed}"
        variants = load_variants()
        v = variants.get(self.variant)
        if v is None or self.steps != v.steps:
            text += f" {self.steps} steps"
        if v is not None:
            defaults = {k: val for k, val in v.hyperparameters.items() if k != "steps"}
            changed = {k: val for k, val in json.loads(self.hyperparameters).items() if defaults.get(k) != val}
            text += "".join(f" {k}={val}" for k, val in sorted(changed.items()))
        return text

    def float64(self) -> "RowKey":
        return RowKey(self.variant, "float64", self.seed, self.steps, self.hyperparameters)

    def file_stem(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", self.label().replace(" seed ", "-seed").replace(" ", "-"))


def row_key(t: Trajectory) -> RowKey:
    return RowKey(t.variant, t.dtype, t.seed, t.steps, json.dumps(t.hyperparameters, sort_keys=True))


def column_key(t: Trajectory) -> str:
    """The device, and the compile mode of a compiled run: "cpu", "cpu+inductor"."""
    return t.device if not getattr(t, "compile", None) else f"{t.device}+{t.compile}"


def _device(column_key: str) -> str:
    return column_key.split("+", 1)[0]


@dataclass
class Source:
    """One DIR (or FILE) given on the command line."""

    path: Path
    label: str
    runs: dict[tuple[RowKey, str], Trajectory] = field(default_factory=dict)  # (row, device) -> run
    digests: dict[tuple[RowKey, str], dict[str, str]] = field(default_factory=dict)  # of the final params
    problems: list[str] = field(default_factory=list)  # disagreements inside this source

    @property
    def devices(self) -> list[str]:
        found = {device for _, device in self.runs}
        return sorted(found, key=lambda d: (d != "cpu", d))

    def environment(self) -> str:
        runs = list(self.runs.values())
        torch_versions = sorted({t.torch_version for t in runs})
        numpy_versions = sorted({t.numpy_version for t in runs})
        caps = sorted({t.cpu_capability for t in runs})
        threads = sorted({t.threads for t in runs})
        return (f"torch {', '.join(torch_versions)}; numpy {', '.join(numpy_versions)}; "
                f"cpu {', '.join(caps)}; threads {', '.join(map(str, threads))}; {len(runs)} runs")


@dataclass(frozen=True)
class Column:
    source: Source
    device: str
    label: str

    def environment(self) -> dict[str, Any]:
        """What decided this column's bits (reference.environment): the record of its first run
        that has one, less the per-run thread count; {} when its results predate the record."""
        for (_, device), t in sorted(self.source.runs.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            if device == self.device and t.environment:
                return {k: v for k, v in t.environment.items() if k != "threads"}
        return {}


# --- reading -----------------------------------------------------------------------------------------

def _results_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
        if not files:
            raise UsageError(f"{path}: no results (*.json) in this directory")
        return files
    if path.is_file():
        return [path]
    raise UsageError(f"{path}: no such directory or file")


def save_results(path: Path, trajectories: list[Trajectory], *, recorded_by: str | None = None) -> None:
    """A results file for compare: final parameters as digests (reference.trajectory)."""
    trajectory_files.save_trajectories(path, trajectories, full_params=False, recorded_by=recorded_by)


def _read_file(path: Path) -> list[tuple[Trajectory, dict[str, str]]]:
    try:
        return trajectory_files.read_trajectories(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def load_source(path: Path, label: str) -> Source:
    source = Source(path, label)
    for file in _results_files(path):
        for t, digest in _read_file(file):
            key = (row_key(t), column_key(t))
            earlier = source.runs.get(key)
            if earlier is None:
                source.runs[key] = t
                source.digests[key] = digest
            elif not (np.array_equal(earlier.losses, t.losses, equal_nan=True) and source.digests[key] == digest):
                # two processes of one session ran the same thing and got different numbers
                source.problems.append(
                    f"{label}: two different trajectories of {key[0].label()} on {key[1]} "
                    f"(nondeterministic within one results directory; {file.name} differs from an earlier file)"
                )
    if not source.runs:
        raise UsageError(f"{path}: no trajectories in its results")
    return source


def _labels(paths: Sequence[Path]) -> list[str]:
    names = [p.stem if p.is_file() else (p.resolve().name or str(p)) for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names)]


# --- judging -----------------------------------------------------------------------------------------

@dataclass
class Cell:
    status: str  # baseline | exact | close | failed | missing | no baseline
    text: str
    verdict: policy.Verdict | None = None
    note: str = ""
    first_difference: int | None = None  # the first step whose loss is not bitwise the baseline's


def judge(row: RowKey, column: Column, baseline: Column) -> Cell:
    run = column.source.runs.get((row, column.device))
    base = baseline.source.runs.get((row, baseline.device))
    if run is None:
        return Cell("missing", "-")
    if column is baseline:
        return Cell("baseline", "baseline")
    if base is None:
        return Cell("no baseline", "(no baseline)")
    golden64 = None
    if row.dtype != "float64":
        shadow = (baseline.source.runs.get((row.float64(), baseline.device))
                  or baseline.source.runs.get((row.float64(), "cpu"))
                  or column.source.runs.get((row.float64(), column.device))
                  or column.source.runs.get((row.float64(), "cpu")))
        golden64 = None if shadow is None else shadow.losses
    verdict = policy.compare(row.variant, row.dtype, run.losses, base.losses, device=_device(column.device),
                             golden64=golden64)
    first = report.first_difference(run.losses, base.losses)
    if verdict.status == policy.EXACT:
        if column.source.digests[row, column.device] == baseline.source.digests[row, baseline.device]:
            return Cell(policy.EXACT, "exact", verdict)
        if run.params and base.params:  # full parameters: say by how much
            worst = _param_difference(run, base)
            note = f"losses bitwise equal, final parameters differ (max relative {worst:.3g})"
            return Cell(policy.CLOSE, f"close {worst:.1e}*", verdict, note)
        return Cell(policy.CLOSE, "close *", verdict, "losses bitwise equal, final parameters differ (digests)")
    if verdict.status == policy.CLOSE:
        return Cell(policy.CLOSE, f"close {verdict.max_rel_error:.1e}", verdict, first_difference=first)
    step = "-" if verdict.first_bad_step is None else str(verdict.first_bad_step)
    return Cell(policy.FAILED, f"DIVERGED @{step} {verdict.max_rel_error:.1e}", verdict, first_difference=first)


def _param_difference(a: Trajectory, b: Trajectory) -> float:
    if a.params.keys() != b.params.keys():
        return float("inf")
    worst = 0.0
    for k in a.params:
        x, y = a.params[k].double(), b.params[k].double()
        if x.shape != y.shape:
            return float("inf")
        rel = (x - y).abs() / y.abs().clamp_min(torch.finfo(torch.float64).tiny)
        worst = max(worst, float(rel.max()) if rel.numel() else 0.0)
    return worst


# --- output ------------------------------------------------------------------------------------------

def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [list(r) for r in rows]
    widths = [max(len(r[i]) for r in [list(header), *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def _nothing_comparable(columns: list[Column]) -> str:
    labels = [c.label for c in columns]
    if len(columns) == 1:
        return (f"nothing to compare: {labels[0]} is a single column (one results source, one device); "
                "give two or more results DIRs or FILEs, the first is the baseline")
    return (f"nothing to compare: {labels[0]} (the baseline) and {', '.join(labels[1:])} share no run "
            "(the same variant, dtype, seed, steps and hyperparameters)")


def _environment_differences(columns: list[Column]) -> list[str]:
    """Per column, the environment keys by which it differs from the baseline column."""
    from .environment import explain_difference

    baseline, lines = columns[0], []
    base_env = baseline.environment()
    for column in columns[1:]:
        env = column.environment()
        if not base_env and not env:
            continue
        differences = explain_difference(base_env, env, names=(baseline.label, column.label))
        lines += [f"  {column.label}: {d}" for d in differences]
    return lines


def _unwritable(plots: Path) -> str | None:
    """Why PNGs cannot be written under `plots`, or None (checked once, before any plot)."""
    from .files import unwritable_folder

    problem = unwritable_folder(plots)
    return None if problem is None else f"{problem}; --plots DIR chooses another folder, --no-plots none"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def compare_sources(sources: list[Source], *, plots: Path | None, html: Path | None = None,
                    warn: Callable[[str], None] = _stderr, retrace: bool = True) -> tuple[list[str], int]:
    """The report's lines and the exit status (0 or 1: a judgement was made); with html, the page too
    (reference.report). UsageError when no cell could be judged: nothing is comparable. Plots that
    cannot be written are a warning. retrace: a run without an op trace of the steps where its cell
    parts from the baseline is re-run here with tracing when this torch reproduces it bitwise."""
    multi_device = any(len(s.devices) > 1 for s in sources) or any(s.devices != ["cpu"] for s in sources)
    columns = [Column(s, d, f"{s.label}:{d}" if multi_device else s.label) for s in sources for d in s.devices]
    baseline = columns[0]
    rows = sorted({row for s in sources for row, _ in s.runs})

    lines = ["results:"]
    lines += [f"  {s.label:<12} {s.path}  ({s.environment()})" for s in sources]
    lines.append(f"baseline: {baseline.label}; cells judged by reference.policy (specs/golden_policy.toml)")
    lines.append("")

    cells = {(row, c.label): judge(row, c, baseline) for row in rows for c in columns}
    lines += _table(["run", *[c.label for c in columns]],
                    [[row.label(), *[cells[row, c.label].text for c in columns]] for row in rows])

    counts = defaultdict(int)
    for cell in cells.values():
        counts[cell.status] += 1
    problems = [p for s in sources for p in s.problems]
    if not any(counts[s] for s in (policy.EXACT, policy.CLOSE, policy.FAILED)) and not problems:
        raise UsageError(_nothing_comparable(columns))
    lines.append("")
    order = [policy.EXACT, policy.CLOSE, policy.FAILED, "missing", "no baseline"]
    names = {policy.FAILED: "diverged"}
    lines.append(", ".join(f"{counts[s]} {names.get(s, s)}" for s in order if counts[s]) or "nothing to compare")

    details = []
    for row in rows:
        for c in columns:
            cell = cells[row, c.label]
            if cell.status in (policy.CLOSE, policy.FAILED) and cell.verdict is not None:
                text = cell.verdict.summary().replace(f"{row.variant} {_device(c.device)} {row.dtype}",
                                                      f"{row.label()} [{c.label}]", 1)
                if cell.note:
                    text = f"{row.label()} [{c.label}]: close, {cell.note}"
                elif cell.first_difference is not None:
                    head, _, tail = text.partition(": ")
                    text = f"{head}: bitwise equal up to step {cell.first_difference - 1}; {tail}" \
                        if cell.first_difference > 0 else f"{head}: differs from step 0; {tail}"
                details.append(("  " if cell.status == policy.CLOSE else "! ") + text)
                base = baseline.source.runs[(row, baseline.device)]
                now = c.source.runs[(row, c.device)]
                details += ["    " + line for line in locate_cell(base, now, (baseline.label, c.label), retrace=retrace)]
                if cell.status == policy.FAILED:
                    table = policy.checkpoint_table(now.losses, base.losses, first_bad=cell.verdict.first_bad_step)
                    details += ["      " + line for line in table.splitlines()]
    if details:
        lines += ["", "differences (! = beyond the policy):", *details]

    environment = _environment_differences(columns)
    if environment:
        lines += ["", "environment (what decides the bits beyond versions) differs from the baseline:", *environment]

    if problems:
        lines += ["", "problems:", *[f"! {p}" for p in problems]]

    to_plot = []
    for row in rows:
        if all(cells[row, c.label].status in ("baseline", policy.EXACT, "missing", "no baseline") for c in columns):
            continue
        curves = {c.label: c.source.runs[(row, c.device)].losses for c in columns
                  if (row, c.device) in c.source.runs}
        if baseline.label in curves:
            to_plot.append((row, curves))
    plots_warning = None if plots is None or not to_plot else _unwritable(plots)
    if plots_warning:
        warn(f"warning: no plots: {plots_warning}")
    elif plots is not None and to_plot:
        written, unavailable = [], False
        for row, curves in to_plot:
            path = plots / f"{row.file_stem()}.png"
            try:
                made = policy.plot_comparison(path, row.label(), curves, baseline.label)
            except OSError as exc:
                warn(f"warning: plot not written: {path} ({exc.strerror or exc})")
                continue
            if made:
                written.append(path)
            else:
                unavailable = True
        if written:
            lines += ["", f"plots of the rows that differ ({len(written)}):", *[f"  {p}" for p in written]]
        if unavailable:
            lines += ["", "no plots: matplotlib is not installed (pip install matplotlib)"]

    diverged = counts[policy.FAILED] > 0 or bool(problems)
    lines += ["", "DIVERGED beyond the policy" if diverged else "nothing diverged beyond the policy"]
    if html is not None:
        page = _html_page(sources, columns, baseline, rows, cells, lines[-1], not diverged, problems)
        lines.append(f"report: {report.write(html, page)}")
    return lines, 1 if diverged else 0


def _column_environment(column: Column) -> dict[str, str]:
    runs = [t for (_, device), t in column.source.runs.items() if device == column.device]

    def values(attr: str) -> str:
        return ", ".join(sorted({str(getattr(t, attr)) for t in runs}))

    return {"results": str(column.source.path), "device": column.device, "torch": values("torch_version"),
            "numpy": values("numpy_version"), "python": values("python_version"),
            "cpu capability": values("cpu_capability"), "threads": values("threads"), "tf32": values("tf32"),
            "runs": str(len(runs))}


def _html_page(sources: list[Source], columns: list[Column], baseline: Column, rows: list[RowKey],
               cells: dict, verdict: str, ok: bool, problems: list[str]) -> report.Page:
    page_rows = []
    for row in rows:
        out = []
        base = baseline.source.runs.get((row, baseline.device))
        for c in columns:
            cell = cells[row, c.label]
            rc = report.Cell(cell.status, cell.text)
            if cell.status in (policy.CLOSE, policy.FAILED) and cell.verdict is not None and base is not None:
                now = c.source.runs[(row, c.device)]
                rc.curves = {baseline.label: base.losses, c.label: now.losses}
                rc.reference = baseline.label
                rc.first_difference = cell.first_difference
                rc.first_bad_step = cell.verdict.first_bad_step
                rc.details = [cell.note or cell.verdict.summary()]
                if cell.status == policy.FAILED:
                    rc.details += ["", policy.checkpoint_table(now.losses, base.losses,
                                                               first_bad=cell.verdict.first_bad_step)]
            out.append(rc)
        page_rows.append((row.label(), out))
    notes = [f"baseline: {baseline.label}; cells judged by reference.policy (specs/golden_policy.toml)"]
    notes += [f"problem: {p}" for p in problems]
    return report.Page("torch-examples-spec compare", [report.Column(c.label, _column_environment(c)) for c in columns],
                       page_rows, verdict, ok, notes=notes)


def cmd_compare(args: argparse.Namespace) -> int:
    paths = [Path(os.path.expanduser(p)) for p in args.results]
    labels = _labels(paths)
    sources = [load_source(p, label) for p, label in zip(paths, labels)]
    plots = None if args.no_plots else Path(os.path.expanduser(args.plots))
    html = None if args.html is None else Path(os.path.expanduser(args.html))
    if html is not None and html.is_dir():
        raise UsageError(f"--html {args.html} is a directory; name a file, e.g. {html / 'compare.html'}")
    lines, status = compare_sources(sources, plots=plots, html=html, retrace=not args.no_retrace)
    print("\n".join(lines))
    return status


def add_compare_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="compare recorded trajectories (e.g. tox's results/<env>/) side by side",
        description="Compare results directories (or files) written by `tox` / `pytest --record-trajectories` "
        "or `python -m reference run --out`. The first is the baseline. Exit status: 0 nothing diverged "
        "beyond the policy, 1 something did (only for a judgement made), 2 bad input or nothing comparable.",
    )
    p.add_argument("results", nargs="+", metavar="DIR", help="results directory (*.json inside) or results file")
    p.add_argument("--plots", default=str(DEFAULT_PLOTS), metavar="DIR",
                   help=f"where the PNGs of the rows that differ go (default: {DEFAULT_PLOTS})")
    p.add_argument("--no-plots", action="store_true", help="write no PNGs")
    p.add_argument("--html", default=None, metavar="FILE",
                   help="also write a self-contained HTML report: the matrix, the curves of each cell that "
                        "differs, the environment of each column")
    p.add_argument("--no-retrace", action="store_true",
                   help="never re-run a run here to trace the steps where its cell parts from the baseline "
                        "(by default a run recorded without that trace is re-run when this torch reproduces "
                        "its losses bitwise)")
    p.set_defaults(func=cmd_compare)
