"""Recorded trajectories side by side (`compare`): results directories or files read as Sources, each
run matched with the baseline column's run of the same variant, dtype, seed, steps and
hyperparameters, and judged by the calibrated row of its variant and dtype (reference/judge/verdict.py).

Each DIR holds results files in the save_trajectories format ({"schema": 1, "trajectories": [...]}),
for instance results/torch213/ as `tox -e torch213` writes it (`pytest --record-trajectories DIR`:
one file per pytest worker); a single results FILE.json (`run --out`, `check --out`) works too.

  rows     one run: variant, dtype, seed (and steps or hyperparameters where they are not the defaults)
  columns  one per results source and device (results/torch214 recorded on cpu and cuda gives two), and
           per torch.compile mode: compiled runs get their own column (cpu+inductor)
  cells    the first column is the baseline; every other cell is judged against it

For a float32 (or CUDA) cell the shadow check measures the run's distance from the float64 run of
the same start: the baseline column's float64 run of the variant and seed, or failing that the
cell's own column's; with neither, the check is not applied (See Note [one status, four words]).
Under every cell that is not exact, the op where the two runs part (reference/judge/locate.py).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..catalogue import load_variants
from ..errors import UsageError
from ..harness.environment import explain_difference
from ..harness.trajectory import Trajectory, read_trajectories
from .locate import locate_cell
from .matrix import Cell, Column as MatrixColumn, Curves, Matrix, Row, baseline_cell, missing_cell, verdict_cell
from .rules import PolicyError, rule_for
from .verdict import judge

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


def device_of(column_key: str) -> str:
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

    def runs(self) -> list[Trajectory]:
        return [t for (_, device), t in self.source.runs.items() if device == self.device]

    def record(self) -> dict[str, Any]:
        """What decided this column's bits (reference.harness.environment): the record of its first
        run that has one, with the thread count when every run of the column shares it; {} when its
        results predate the record."""
        for (_, device), t in sorted(self.source.runs.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            if device == self.device and t.environment:
                threads = {r.threads for r in self.runs()}
                record = {k: v for k, v in t.environment.items() if k != "threads"}
                return {**record, "threads": threads.pop()} if len(threads) == 1 else record
        return {}

    def summary(self) -> dict[str, str]:
        """Versions and settings, for the report's environment table."""
        runs = self.runs()

        def values(attr: str) -> str:
            return ", ".join(sorted({str(getattr(t, attr)) for t in runs if getattr(t, attr) is not None})) or "-"

        return {"results": str(self.source.path), "device": self.device, "torch": values("torch_version"),
                "numpy": values("numpy_version"), "python": values("python_version"),
                "cpu capability": values("cpu_capability"), "threads": values("threads"),
                "tf32 (CUDA matmul)": values("tf32"),
                "runs": str(len(runs))}


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


def load_source(path: Path, label: str) -> Source:
    source = Source(path, label)
    for file in _results_files(path):
        try:
            read = read_trajectories(file)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        for t, digest in read:
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


def labels_for(paths: Sequence[Path]) -> list[str]:
    names = [p.stem if p.is_file() else (p.resolve().name or str(p)) for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names)]


# --- judging -----------------------------------------------------------------------------------------

def _float64_partner(row: RowKey, column: Column, baseline: Column) -> Trajectory | None:
    if row.dtype == "float64":
        return None
    return (baseline.source.runs.get((row.float64(), baseline.device))
            or baseline.source.runs.get((row.float64(), "cpu"))
            or column.source.runs.get((row.float64(), column.device))
            or column.source.runs.get((row.float64(), "cpu")))


def judge_cell(row: RowKey, column: Column, baseline: Column) -> Cell:
    run = column.source.runs.get((row, column.device))
    base = baseline.source.runs.get((row, baseline.device))
    if column is baseline:
        return baseline_cell() if run is not None else missing_cell("no such run in this column")
    if run is None:
        return missing_cell("no such run in this column")
    if base is None:
        return missing_cell("no such run in the baseline column", "(no baseline)")
    partner = _float64_partner(row, column, baseline)
    verdict = judge(row.variant, row.dtype, run.losses, base.losses, device=device_of(column.device),
                    reference64=None if partner is None else partner.losses,
                    now_params=run.params_record(), reference_params=base.params_record(),
                    params_equal=column.source.digests[row, column.device] == baseline.source.digests[row, baseline.device])
    try:
        rule = rule_for(row.variant, row.dtype, device_of(column.device))
    except PolicyError:
        rule = None
    curves = Curves(baseline.label, column.label, base.losses, run.losses,
                    None if partner is None else partner.losses, rule)
    return verdict_cell(verdict, curves=curves)


def compare_matrix(sources: list[Source], *, retrace: bool = True) -> Matrix:
    """Every shared run of the sources judged against the first source's (the baseline). UsageError
    when nothing is comparable. retrace: a run without an op trace of the step where its cell parts
    from the baseline is re-run here with tracing when this torch reproduces it bitwise."""
    multi_device = any(len(s.devices) > 1 for s in sources) or any(s.devices != ["cpu"] for s in sources)
    columns = [Column(s, d, f"{s.label}:{d}" if multi_device else s.label) for s in sources for d in s.devices]
    baseline = columns[0]
    keys = sorted({row for s in sources for row, _ in s.runs})
    rows = []
    for key in keys:
        cells = [judge_cell(key, c, baseline) for c in columns]
        for c, cell in zip(columns, cells):
            if cell.differs:
                base, now = baseline.source.runs[(key, baseline.device)], c.source.runs[(key, c.device)]
                cell.located = locate_cell(base, now, (baseline.label, c.label), retrace=retrace)
        rows.append(Row(key.label(), cells))
    matrix = Matrix("torch-examples-spec compare",
                    [MatrixColumn(c.label, c.summary(), c.record(), c is baseline) for c in columns], rows)
    matrix.divergences = [p for s in sources for p in s.problems]
    if not any(s.judged for s in matrix.statuses()) and not matrix.divergences:
        raise UsageError(_nothing_comparable(columns))
    matrix.notes = [f"baseline: {baseline.label}; each cell judged by the calibrated row of its variant and dtype "
                    "(specs/golden_tolerances.toml)"]
    matrix.inputs = [f"{s.label:<12} {s.path}  ({s.environment()})" for s in sources]
    base_record = matrix.columns[0].record
    for column in matrix.columns[1:]:
        if base_record or column.record:
            matrix.environment_differences += [
                f"{column.label}: {d}" for d in explain_difference(base_record, column.record,
                                                                    names=(baseline.label, column.label))]
    return matrix


def _nothing_comparable(columns: list[Column]) -> str:
    labels = [c.label for c in columns]
    if len(columns) == 1:
        return (f"nothing to compare: {labels[0]} is a single column (one results source, one device); "
                "give two or more results DIRs or FILEs, the first is the baseline")
    return (f"nothing to compare: {labels[0]} (the baseline) and {', '.join(labels[1:])} share no run "
            "(the same variant, dtype, seed, steps and hyperparameters)")
