"""One Matrix of judgements, built by every door (`check`, `compare`, the pytest summary) and read by
every report (reference/report/: text, HTML, plots): rows are runs, columns are where they ran, each
cell holds one Status (See Note [one status, four words]) and the Verdict behind it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from .rules import Rule
from .status import Status, exit_status
from .verdict import Verdict


@dataclass
class Curves:
    """What a plot of one cell draws: the run, its reference, the float64 partner, and the rule whose
    bands shade the allowed region."""

    reference_label: str
    now_label: str
    reference: Sequence[float]
    now: Sequence[float]
    reference64: Sequence[float] | None = None
    rule: Rule | None = None


@dataclass
class Cell:
    status: Status | None  # None: the reference column's own cell (not a judgement)
    text: str  # what the matrix shows
    verdict: Verdict | None = None
    reason: str = ""  # not comparable: why
    located: list[str] = field(default_factory=list)  # the op lines (reference/judge/locate.py)
    curves: Curves | None = None
    checkpoints: list[str] = field(default_factory=list)  # a small table of losses at chosen steps

    @property
    def differs(self) -> bool:
        return self.status in (Status.CLOSE, Status.DIVERGED)

    @property
    def first_op(self) -> str | None:
        return next((line for line in self.located if line.startswith(("first differing op", "first difference"))),
                    None)


def baseline_cell(text: str = "baseline") -> Cell:
    return Cell(None, text)


def missing_cell(reason: str, text: str = "-") -> Cell:
    return Cell(Status.NOT_COMPARABLE, text, reason=reason)


def verdict_cell(verdict: Verdict, **extra: Any) -> Cell:
    return Cell(verdict.status, verdict.cell_text(), verdict, reason=verdict.reason, **extra)


@dataclass
class Column:
    label: str
    environment: Mapping[str, str]  # versions and settings shown per column
    record: Mapping[str, Any] | None = None  # the full environment record (reference.harness.environment)
    reference: bool = False  # the column the others are judged against


@dataclass
class Row:
    label: str
    cells: list[Cell]


@dataclass
class PropertyResult:
    """A property checked on fixed inputs (reference/judge/properties.py)."""

    label: str
    variant: str
    device: str
    dtype: str
    passed: bool
    message: str = ""


@dataclass
class Matrix:
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    properties: list[PropertyResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown under the title: what was compared, skipped
    inputs: list[str] = field(default_factory=list)  # what each column was read or run from
    problems: list[str] = field(default_factory=list)  # what could not be judged and makes the run an error
    divergences: list[str] = field(default_factory=list)  # beyond the policy, in no one cell (nondeterminism)
    environment_differences: list[str] = field(default_factory=list)
    reference_cells_shown: bool = True  # False: the reference column's cells say nothing (check's goldens)

    def cells(self) -> Iterator[tuple[Row, Column, Cell]]:
        for row in self.rows:
            for column, cell in zip(self.columns, row.cells):
                yield row, column, cell

    def statuses(self) -> list[Status]:
        out = [cell.status for _, _, cell in self.cells() if cell.status is not None]
        out += [Status.EXACT if p.passed else Status.DIVERGED for p in self.properties]
        out += [Status.DIVERGED for _ in self.divergences]
        return out

    def counts(self) -> dict[Status, int]:
        counts = {s: 0 for s in Status}
        for _, _, cell in self.cells():
            if cell.status is not None:
                counts[cell.status] += 1
        return counts

    def diverged(self) -> list[tuple[Row, Column, Cell]]:
        return [(r, c, cell) for r, c, cell in self.cells() if cell.status is Status.DIVERGED]

    def failed_properties(self) -> list[PropertyResult]:
        return [p for p in self.properties if not p.passed]

    def exit_status(self) -> int:
        """0: something judged, nothing diverged; 1: something diverged; 2: problems or nothing judged."""
        return exit_status(self.statuses(), errors=bool(self.problems))

    def counts_line(self) -> str:
        counts = self.counts()
        parts = [f"{n} {s}" for s, n in counts.items() if n]
        if self.properties:
            passed = sum(p.passed for p in self.properties)
            parts.append(f"properties {passed} of {len(self.properties)} passed")
        return ", ".join(parts) or "nothing judged"

    def verdict_line(self) -> str:
        """The closing line: the same words for every door."""
        bad = self.diverged()
        props = self.failed_properties()
        if bad or props:
            variants = sorted({_variant(r.label) for r, _, _ in bad} | {p.variant for p in props})
            where = [f"{r.label} [{c.label}]" for r, c, _ in bad] + [f"{p.label} [{p.device} {p.dtype}]" for p in props]
            return f"DIVERGED beyond the policy in {', '.join(variants)}: {'; '.join(dict.fromkeys(where))}"
        if self.divergences:
            return "DIVERGED beyond the policy: " + "; ".join(self.divergences)
        if self.problems:
            return "ERROR: not everything could be judged (see problems above)"
        if not any(s.judged for s in self.statuses()):
            return "nothing was judged"
        return "nothing diverged beyond the policy"


def _variant(row_label: str) -> str:
    return row_label.split(" ", 1)[0]
