"""The session summary of the golden comparisons and device checks: what each test records
(user_properties, JSON-able, so xdist and JUnit XML carry it) and the lines the plugin prints.
Imports no torch: the xdist controller, which prints them, never needs it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# user_properties names: a dict (GoldenResult) per golden comparison, a line per device check
GOLDEN_PROPERTY = "golden_result"
DEVICE_CHECK_PROPERTY = "device_check_verdict"
STATUSES = ("exact", "close", "failed", "updated")


@dataclass
class GoldenResult:
    """What one golden comparison found (JSON-able: xdist and JUnit XML carry it as it is)."""

    key: str
    device: str
    compile: str | None
    status: str  # one of STATUSES
    summary: str  # the policy's one line, or where an update was written

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


def summary_lines(results: list[GoldenResult], session_torch: str | None = None) -> list[str]:
    """The 'golden comparisons' section: counts, a note on GPU boxes, and every line not exact."""
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    lines = [", ".join(f"{n} {s}" for s, n in counts.items() if n)]
    note = _device_note(results, session_torch)
    if note:
        lines.append(note)
    lines += ["  " + r.line for r in sorted(results, key=lambda r: r.line) if r.status != "exact"]
    return lines


def _device_note(results: list[GoldenResult], session_torch: str | None) -> str | None:
    """On a GPU box the golden tests compare a CUDA run of this torch with CPU goldens of another:
    say so, so that a CUDA golden failure is not read as a device difference alone."""
    devices = sorted({r.device for r in results if r.device != "cpu"})
    if not devices:
        return None
    from .. import golden  # a GPU box's session only: worth a torch import

    if session_torch is None:
        import torch

        session_torch = torch.__version__
    recorded = sorted(golden.recorded_torch_versions())
    if recorded == [session_torch]:
        return None
    return (f"goldens recorded on torch {', '.join(recorded)}, cpu; this session: torch {session_torch} on "
            f"{', '.join(['cpu', *devices])}: the {', '.join(devices)} lines differ from their goldens in device "
            "and torch version both (the device checks compare the devices alone)")
