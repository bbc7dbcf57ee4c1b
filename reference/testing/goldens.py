"""The `golden` fixture: `golden.check(key, device=...)` runs a golden's variant and judges it against its
golden file under the policy (reference.judge.goldens.judge_golden, the judgement `check` makes), in
the shape of pytest-regressions' fixtures. It owns what a golden comparison involves here:
--update-goldens (rewriting only what differs), a missing file (with the command that creates it), a
mismatch (the verdict, where the state parts and the op that changed, what differs in the
environment, a text report, the picture, and the obtained trajectory as a golden file beside them,
as pytest-regressions' `.obtained`), and a structured result for the session summary.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import pytest

from .. import facts
from ..harness.environment import explain_difference
from ..harness.threads import CANONICAL_THREADS
from ..harness.trajectory import Trajectory
from ..judge import goldens
from ..judge.blocks import failing
from ..judge.expectations import judge_exact
from ..judge.status import Status
from ..judge.validation import recording
from ..judge.goldens import GoldenError, GoldenJudgement, GoldenKey
from ..judge.locate import explain_golden_failure
from ..judge.matrix import Curves, verdict_cell
from ..judge.rules import PolicyError, rule_for
from ..judge.verdict import Verdict
from ..report import plots
from ..report.text import cell_details, cell_summary
from .session import TestSession
from .summary import GOLDEN_PROPERTY, OUTSIDE_PROPERTY, GoldenResult


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

    def check(self, key: GoldenKey, *, device: str = "cpu") -> Verdict | None:
        """Judge `key` on `device`; fail the test with the golden report unless the policy passes it.
        Under --update-goldens, rewrite the golden where it differs instead (CPU only); return None."""
        self._skip_unless_supported(key, device)
        if self.updating:
            return self._update(key, device)
        judged, problem = self.judge(key, device=device)
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        return judged.verdict

    def judge(self, key: GoldenKey, *, device: str = "cpu", compile: str | None = None) -> tuple[GoldenJudgement, str | None]:
        """The judgement of `key`'s run on `device` (compiled with `compile`, against the eager golden),
        recorded for the session summary: (the judgement, the failure report or None when it passes)."""
        outside = facts.outside_note()
        if outside:
            self._request.node.user_properties.append((OUTSIDE_PROPERTY, outside))
        session = TestSession.of(self._request.config)
        runner = self._run if compile is None else (lambda variant, **kw: self._run(variant, compile=compile, **kw))
        if compile is None and session.keeps_expectation_runs:
            runner = recording(runner)  # the state and first steps' traces an expectation set keeps
        try:
            judged = goldens.judge_golden(key, device, runner=runner)
        except GoldenError as exc:
            hint = (f"\ncreate or refresh it with: {update_command(self._request.node.nodeid)}"
                    if "missing" in str(exc) else "")
            pytest.fail(f"{exc}{hint}", pytrace=False)
        verdict = judged.verdict
        where = device if compile is None else f"{device} compile={compile}"
        choice = session.expectation_for(device) if compile is None else None
        if choice is not None and choice.chosen is not None:  # an expectation of this environment: bit for bit
            cell = judge_exact(choice.chosen, device, judged.now, verdict.status)
            self._record(GoldenResult(str(key), device, None, str(cell.status), f"{key.label} ({where}): {cell.reason}",
                                      key.label, cell.text))
            return judged, (None if cell.status is not Status.DIVERGED else
                            f"expectation mismatch for {key} on {where}: {cell.reason}\n({choice.note})")
        if compile is None and session.records_expectations:
            session.keep_for_expectations(device, judged.now, runner)
        self._record(GoldenResult(str(key), device, compile, str(verdict.status),
                                  verdict.summary().replace(f"{key.dtype}:", f"{key.dtype} ({where}):", 1),
                                  key.label, verdict.cell_text()))
        return judged, None if verdict.ok else self._report(key, where, judged, locate=compile is None)

    def _skip_unless_supported(self, key: GoldenKey, device: str) -> None:
        from ..catalogue import lookup

        variant = lookup(key.variant)
        if key.dtype not in variant.dtypes:
            pytest.skip(f"{key.variant} has no {key.dtype} variant")
        if device.split(":")[0] not in variant.devices:
            pytest.skip(f"{key.variant} runs on {', '.join(variant.devices)} only")

    def _stop_reason(self) -> str | None:
        return TestSession.of(self._request.config).stop_reason()

    def _update(self, key: GoldenKey, device: str) -> None:
        if device != goldens.CANONICAL_DEVICE:
            pytest.skip("goldens are recorded on the CPU; --update-goldens leaves CUDA tests alone")
        reason = self._stop_reason()
        if reason:
            pytest.fail(f"golden {key} not written: {reason}", pytrace=False)
        fresh = self._run(key.variant, seed=key.seed, dtype=key.dtype, steps=key.steps, threads=CANONICAL_THREADS,
                          record_state=True)
        path, happened = goldens.write(key, fresh)
        trace_path, traced = goldens.write_trace(key, self._run)  # golden failures name the op from it
        self._record(GoldenResult(str(key), device, None, happened,
                                  f"{key} cpu: {happened} {path}; op trace {traced}", key.label, happened))

    def _record(self, result: GoldenResult) -> None:
        self._request.node.user_properties.append((GOLDEN_PROPERTY, asdict(result)))

    def _report(self, key: GoldenKey, device: str, judged: GoldenJudgement, *, locate: bool = True) -> str:
        """The failure text, and the files beside it: the report, the picture, the obtained golden.
        locate: name where the state parts and the op (not for compiled runs: dynamo does not compile
        under the trace's dispatch mode)."""
        now, verdict = judged.now, judged.verdict
        located = failing(key.variant, now.device, key.dtype)
        located += (explain_golden_failure(key, dict(device=now.device, threads=now.threads), self._run) if locate
                    else ["op not located: a compiled run is not traced"])
        try:
            rule = rule_for(key.variant, key.dtype, now.device)
        except PolicyError:
            rule = None
        cell = verdict_cell(verdict, located=located,
                            curves=Curves("golden", f"now ({device})", judged.golden_losses, now.losses,
                                          judged.golden64, rule))
        environment = "".join(f"  environment: {line}\n"
                              for line in explain_difference(judged.golden.get("environment"), now.environment))
        text = "\n".join([cell_summary(key.label, device, cell), *cell_details(key.label, device, cell)])
        stem = f"{key}-{device.replace(':', '').replace(' ', '-').replace('=', '-')}"
        folder = self._artifacts / "goldens"
        folder.mkdir(parents=True, exist_ok=True)
        report = folder / f"{stem}.txt"
        report.write_text(text + "\n")
        fig = plots.figure(key.label, device, cell)
        png = folder / f"{stem}.png"
        wrote_png = fig is not None and plots.png(fig, png)
        obtained = self._obtained(key, now, folder / f"{stem}.obtained.json")
        files = [f"report: {report}", f"plot: {png}" if wrote_png else "no plot (pip install matplotlib for one)"]
        if obtained is not None:
            files.append(f"obtained: {obtained} (the run as a golden file: diff it with {key.path})")
        return (f"golden mismatch for {key} on {device} ({goldens.golden_label(now, judged.golden)})\n"
                f"{environment}{text}\n\n" + "; ".join(files))

    @staticmethod
    def _obtained(key: GoldenKey, now: Trajectory, path: Path) -> Path | None:
        """The run in golden-file form (CPU runs: a CUDA run is not a golden)."""
        if now.device != goldens.CANONICAL_DEVICE or now.compile is not None:
            return None
        data: dict[str, Any] = goldens.payload(key, now)
        path.write_text(json.dumps(data, indent=0) + "\n")
        return path
