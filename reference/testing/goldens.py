"""The `golden` fixture: `golden.check(key, device=...)` runs a golden's variant and judges it against
its golden file under the policy, in the shape of pytest-regressions' fixtures. It owns what a
golden comparison involves: --update-goldens, a missing file (with the command that creates it), a
mismatch (the policy's verdict, the op that changed, what differs in the environment, a text report
and a plot under --artifacts-dir), and a structured result for the session summary.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import pytest

from .. import golden, policy
from ..golden import CANONICAL_THREADS, GoldenError, GoldenKey
from ..harness import Trajectory
from .summary import GOLDEN_PROPERTY, GoldenResult


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
