"""The `golden` fixture: `golden.check(key, device=...)` runs a golden's variant and judges it against
its golden file under the policy, in the shape of pytest-regressions' fixtures. It owns what a
golden comparison involves: --update-goldens, a missing file (with the command that creates it), a
mismatch (the policy's verdict, the op that changed, what differs in the environment, a text report
and a plot under --artifacts-dir), and a structured result for the session summary.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from .. import golden, policy
from ..golden import CANONICAL_THREADS, GoldenError, GoldenKey
from ..harness import Trajectory

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


def update_command(nodeid: str) -> str:
    return f'pytest "{nodeid}" --update-goldens'


class Golden:
    def __init__(self, request: pytest.FixtureRequest, runner: Callable[..., Trajectory], artifacts_dir: Path):
        self._request = request
        self._run = runner
        self._artifacts = artifacts_dir

    @property
    def updating(self) -> bool:
        return bool(self._request.config.getoption("--update-goldens"))

    def check(self, key: GoldenKey, *, device: str = "cpu") -> policy.Verdict | None:
        """Judge `key` on `device`; fail the test with the golden report unless the policy passes it.
        Under --update-goldens, rewrite the golden instead (CPU only) and return None."""
        self._skip_unless_supported(key, device)
        if self.updating:
            return self._update(key, device)
        from ..check import judge_golden

        try:
            judged = judge_golden(key, device, runner=self._run)
        except GoldenError as exc:
            hint = (f"\ncreate or refresh it with: {update_command(self._request.node.nodeid)}"
                    if "missing" in str(exc) else "")
            pytest.fail(f"{exc}{hint}", pytrace=False)
        verdict, now = judged.verdict, judged.now
        self._record(GoldenResult(str(key), device, None, verdict.status if verdict.ok else "failed", verdict.summary()))
        if not verdict.ok:
            from ..trace import explain_golden_failure

            pytest.fail(f"golden mismatch for {key} on {device} ({golden.golden_label(now, judged.golden)})\n"
                        + explain_golden_failure(key, dict(device=device, threads=now.threads)) + "\n"
                        + _environment_note(now, judged.golden)
                        + self._artifact_report(key, device, verdict, now.losses, judged), pytrace=False)
        return verdict

    def _skip_unless_supported(self, key: GoldenKey, device: str) -> None:
        from ..catalogue import lookup

        variant = lookup(key.variant)
        if key.dtype not in variant.dtypes:
            pytest.skip(f"{key.variant} has no {key.dtype} variant")
        if device.split(":")[0] not in variant.devices:
            pytest.skip(f"{key.variant} runs on {', '.join(variant.devices)} only")

    def _update(self, key: GoldenKey, device: str) -> None:
        if device != golden.CANONICAL_DEVICE:
            pytest.skip("goldens are recorded on the CPU; --update-goldens leaves CUDA tests alone")
        fresh = self._run(key.variant, seed=key.seed, dtype=key.dtype, steps=key.steps, threads=CANONICAL_THREADS)
        path = golden.write(key, fresh)
        from ..trace import write_golden_trace

        write_golden_trace(key)  # the companion op trace of its first steps (golden failures name the op)
        self._record(GoldenResult(str(key), device, None, "updated", f"{key} cpu: updated {path}"))

    def _record(self, result: GoldenResult) -> None:
        self._request.node.user_properties.append((GOLDEN_PROPERTY, asdict(result)))

    def _artifact_report(self, key: GoldenKey, where: str, verdict: policy.Verdict, now: list[float],
                         judged: Any) -> str:
        stem = f"{key}-{where.replace(':', '').replace(' ', '-')}"
        folder = self._artifacts / "goldens"
        curves = {"golden": judged.golden_losses, "now": now}
        if judged.golden64 is not None and key.dtype != "float64":
            curves["float64 golden"] = judged.golden64
        png = folder / f"{stem}.png"
        wrote_png = policy.plot_comparison(png, f"{key} on {where}", curves, "golden")
        text = "\n".join([verdict.summary(), "",
                          policy.checkpoint_table(now, judged.golden_losses, first_bad=verdict.first_bad_step)])
        report = folder / f"{stem}.txt"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(text + "\n")
        plot = f"plot: {png}" if wrote_png else "no plot (pip install matplotlib for one)"
        return f"{text}\n\nreport: {report}; {plot}"


def _environment_note(now: Trajectory, gold: dict[str, Any]) -> str:
    """What decides the bits and differs from the golden's host (CPU, BLAS kernels, variables)."""
    from ..environment import explain_difference

    return "".join(f"  environment: {line}\n" for line in explain_difference(gold.get("environment"), now.environment))


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


def summary_lines(results: list[GoldenResult], session_torch: str) -> list[str]:
    """The 'golden comparisons' section: counts, a note on GPU boxes, and every line not exact."""
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    lines = [", ".join(f"{n} {s}" for s, n in counts.items() if n)]
    note = _device_note(results, session_torch)
    if note:
        lines.append(note)
    lines += ["  " + r.line for r in sorted(results, key=lambda r: r.line) if r.status != "exact"]
    return lines


def _device_note(results: list[GoldenResult], session_torch: str) -> str | None:
    """On a GPU box the golden tests compare a CUDA run of this torch with CPU goldens of another:
    say so, so that a CUDA golden failure is not read as a device difference alone."""
    recorded = sorted(golden.recorded_torch_versions())
    devices = sorted({r.device for r in results if r.device != "cpu"})
    if not devices or recorded == [session_torch]:
        return None
    return (f"goldens recorded on torch {', '.join(recorded)}, cpu; this session: torch {session_torch} on "
            f"{', '.join(['cpu', *devices])}: the {', '.join(devices)} lines differ from their goldens in device "
            "and torch version both (the device checks compare the devices alone)")
