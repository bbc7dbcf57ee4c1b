"""The text report of a Matrix: what `check` and `compare` print, and the pytest summary's table."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..judge.matrix import Cell, Matrix
from ..judge.status import Status, legend
from .table import table

TINY = np.finfo(np.float64).tiny


def checkpoint_table(now: Sequence[float], reference: Sequence[float], *, rows: int = 8,
                     first_bad: int | None = None, names: tuple[str, str] = ("reference", "now")) -> list[str]:
    """Losses of both runs at evenly spaced steps (and the first one outside the policy)."""
    n = min(len(now), len(reference))
    steps = sorted(set(np.linspace(0, n - 1, rows).astype(int).tolist() + ([first_bad] if first_bad is not None else [])))
    lines = [f"{'step':>7}  {names[0]:>14}  {names[1]:>14}  {'rel. error':>10}"]
    for t in steps:
        rel = abs(now[t] - reference[t]) / max(abs(reference[t]), TINY)
        mark = "  <- first outside tolerance" if t == first_bad else ""
        lines.append(f"{t:>7}  {reference[t]:>14.8g}  {now[t]:>14.8g}  {rel:>10.3g}{mark}")
    return lines


def cell_summary(label: str, column: str, cell: Cell) -> str:
    """One line for a cell: the verdict, with where the losses stop being bitwise equal."""
    v = cell.verdict
    if v is None:
        return f"{label} [{column}]: {cell.text}" + (f": {cell.reason}" if cell.reason else "")
    text = v.summary().replace(f"{v.variant} {v.device} {v.dtype}", f"{label} [{column}]", 1)
    head, sep, tail = text.partition(": ")
    if v.status in (Status.CLOSE, Status.DIVERGED) and v.first_difference is not None:
        where = (f"bitwise equal up to step {v.first_difference - 1}" if v.first_difference > 0
                 else "differs from step 0")
        text = f"{head}: {where}; {tail}"
    return text


def cell_details(label: str, column: str, cell: Cell, indent: str = "    ") -> list[str]:
    """The lines under a cell that is not exact: its checks, the op that changed, the checkpoints."""
    v = cell.verdict
    first = [line for line in cell.located if line.startswith("building block")]  # what to look at first
    lines = [indent + line for line in first]
    if v is not None and v.rule:
        lines.append(f"{indent}judged by the row {v.rule}: " + "; ".join(v.checks_lines()))
    lines += [indent + line for line in cell.located if line not in first]
    if v is not None and v.status is Status.DIVERGED and cell.curves is not None:
        c = cell.curves
        lines += [indent + "  " + line for line in
                  checkpoint_table(c.now, c.reference, first_bad=v.first_bad_step, names=("reference", "now"))]
    return lines


def render(matrix: Matrix, *, legend_lines: bool = True) -> list[str]:
    lines: list[str] = []
    if matrix.inputs:
        lines += ["results:", *[f"  {line}" for line in matrix.inputs]]
    lines += matrix.notes
    if matrix.rows:
        shown = [i for i, c in enumerate(matrix.columns) if matrix.reference_cells_shown or not c.reference]
        first = "run" if matrix.reference_cells_shown else next((c.label for c in matrix.columns if c.reference), "run")
        lines += [""] + table([first, *[matrix.columns[i].label for i in shown]],
                              [[r.label, *[r.cells[i].text for i in shown]] for r in matrix.rows])
    if matrix.properties:
        columns = list(dict.fromkeys(f"{p.device} {p.dtype}" for p in matrix.properties))
        cells = {(p.label, f"{p.device} {p.dtype}"): "ok" if p.passed else "FAILED" for p in matrix.properties}
        labels = list(dict.fromkeys(p.label for p in matrix.properties))
        lines += [""] + table(["property", *columns], [[p, *[cells.get((p, c), "-") for c in columns]] for p in labels])
    lines += ["", matrix.counts_line()]
    if legend_lines and matrix.rows:
        lines += ["", "what the cells say:", *legend()]
    details = []
    for row, column, cell in matrix.cells():
        if cell.differs:
            details.append(("! " if cell.status is Status.DIVERGED else "  ") + cell_summary(row.label, column.label, cell))
            details += cell_details(row.label, column.label, cell)
    details += [f"! {p.message}" for p in matrix.failed_properties()]
    if details:
        lines += ["", "differences (! = beyond the policy):", *details]
    unjudged = [f"  {r.label} [{c.label}]: {cell.reason}" for r, c, cell in matrix.cells()
                if cell.status is Status.NOT_COMPARABLE and cell.text not in ("-", "(no baseline)", "n/a", "ERROR")]
    if unjudged:
        lines += ["", "not comparable (no judgement made):", *unjudged]
    if matrix.environment_differences:
        lines += ["", "environment (what decides the bits beyond versions) differs from the baseline:",
                  *[f"  {line}" for line in matrix.environment_differences]]
    if matrix.problems or matrix.divergences:
        lines += ["", "problems:", *[f"! {p}" for p in [*matrix.problems, *matrix.divergences]]]
    lines += ["", matrix.verdict_line()]
    return lines
