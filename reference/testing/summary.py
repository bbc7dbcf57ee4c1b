"""The session summary: each golden test records what it found (user_properties, JSON-able, so xdist
and JUnit XML carry it); the controller gathers them into a Matrix (reference/judge/matrix.py) and
prints it with the one table printer, in the words every door uses. Imports no torch: the xdist
controller, which prints it, never needs it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

# user_properties names: a dict (GoldenResult) per golden comparison, a line per device check
GOLDEN_PROPERTY = "golden_result"
DEVICE_CHECK_PROPERTY = "device_check_verdict"
UPDATES = ("written", "completed", "unchanged")  # what --update-goldens did to a file


@dataclass
class GoldenResult:
    """What one golden comparison found (JSON-able: xdist and JUnit XML carry it as it is)."""

    key: str
    device: str
    compile: str | None
    status: str  # a Status of reference/judge/status.py, or one of UPDATES
    summary: str  # the verdict's one line, or where an update was written
    label: str = ""  # the matrix row ("mlp.nn float32 seed 0")
    text: str = ""  # the matrix cell ("close 3.1e-07")

    @classmethod
    def from_property(cls, value: dict[str, Any]) -> "GoldenResult":
        return cls(**value)

    @property
    def line(self) -> str:
        return self.summary


def golden_results(terminalreporter: Any) -> list[GoldenResult]:
    return [GoldenResult.from_property(v) for v in session_properties(terminalreporter, GOLDEN_PROPERTY)]


def session_properties(terminalreporter: Any, wanted: str) -> list[Any]:
    values = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            values += [value for name, value in getattr(report, "user_properties", []) if name == wanted]
    return values


def matrix(results: list[GoldenResult]):
    """The judged results as a Matrix: a row per golden, a column per device."""
    from ..judge.matrix import Cell, Column, Matrix, Row, baseline_cell
    from ..judge.status import Status

    judged = [r for r in results if r.status not in UPDATES]
    devices = sorted({r.device for r in judged}, key=lambda d: (d != "cpu", d))
    by = {(r.label or r.key, r.device): r for r in judged}
    labels = sorted({r.label or r.key for r in judged})
    rows = []
    for label in labels:
        cells = [baseline_cell("golden")]
        for d in devices:
            r = by.get((label, d))
            cells.append(Cell(Status.NOT_COMPARABLE, "-", reason="not run") if r is None
                         else Cell(Status(r.status), r.text or r.status, reason=r.summary))
        rows.append(Row(label, cells))
    return Matrix("golden comparisons", [Column("golden", {}, reference=True)] + [Column(d, {}) for d in devices], rows)


def summary_lines(results: list[GoldenResult], session_torch: str | None = None) -> list[str]:
    """The 'golden comparisons' section: the matrix, its counts, a note on GPU boxes, and every
    comparison that is not exact."""
    from ..report.table import table

    m = matrix(results)
    lines = []
    if m.rows:
        lines += table(["golden", *[c.label for c in m.columns[1:]]],
                       [[r.label, *[c.text for c in r.cells[1:]]] for r in m.rows])
        lines.append(m.counts_line())
    updates = [r for r in results if r.status in UPDATES]
    if updates:
        counts = {u: sum(r.status == u for r in updates) for u in UPDATES}
        lines.append("--update-goldens: " + ", ".join(f"{n} {u}" for u, n in counts.items() if n))
    note = _device_note(results, session_torch)
    if note:
        lines.append(note)
    lines += ["  " + r.line for r in sorted(results, key=lambda r: r.line) if r.status not in ("exact", "unchanged")]
    return lines


def sections(terminalreporter: Any) -> Iterator[tuple[str, list[str]]]:
    results = golden_results(terminalreporter)
    if results:
        yield "golden comparisons", summary_lines(results)
    outside = _outside_note(terminalreporter)
    if outside:
        yield "torch version", [outside]
    checks = session_properties(terminalreporter, DEVICE_CHECK_PROPERTY)
    if checks:
        yield "device checks: CUDA vs CPU from the same start, same torch", ["  " + line for line in sorted(checks)]


def _outside_note(terminalreporter: Any) -> str | None:
    """The torch of a session that ran tests, when it is outside the verified range (workers report it)."""
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for name, value in getattr(report, "user_properties", []):
            if name == OUTSIDE_PROPERTY:
                return value
    return None


OUTSIDE_PROPERTY = "torch_outside_verified_range"


def _device_note(results: list[GoldenResult], session_torch: str | None) -> str | None:
    """On a GPU box the golden tests compare a CUDA run of this torch with CPU goldens of another:
    say so, so that a CUDA golden failure is not read as a device difference alone."""
    devices = sorted({r.device for r in results if r.device != "cpu"})
    if not devices:
        return None
    from ..judge import goldens  # a GPU box's session only: worth a torch import

    if session_torch is None:
        import torch

        session_torch = torch.__version__
    recorded = sorted(goldens.recorded_torch_versions())
    if recorded == [session_torch]:
        return None
    return (f"goldens recorded on torch {', '.join(recorded)}, cpu; this session: torch {session_torch} on "
            f"{', '.join(['cpu', *devices])}: the {', '.join(devices)} lines differ from their goldens in device "
            "and torch version both (the device checks compare the devices alone)")
