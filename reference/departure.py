"""Op traces of the step where two runs part ways, for `compare` (reference/trace.py names the op).

A recording (`pytest --record-trajectories DIR`) keeps the op trace of every run's first steps. Two
torch versions usually part ways much later (torch 2.14's clamp backward: at the first exact zero,
step 114 of mlp.autograd float32 seed 0). Two ways to get a trace of the step where they part:

recorded   when recording, a run whose losses leave its golden bitwise at loss k also keeps the
           trace of its departing steps k-1 and k (the step whose backward or update made the new
           loss, and the step that computed it): record_departures(). The golden is the one
           reference both versions' recordings share; a run equal to its golden adds nothing.
re-run     when comparing, a column without a trace of the steps where the two columns part
           (typically the one still bitwise equal to the golden) is re-run here, in this process,
           up to that step with tracing on, if this torch reproduces that column's losses bitwise
           through the step and starts from the same state (fingerprints of data and parameters):
           locate_cell() says so in its output, naming this torch.

Tracing is never on in the gate's own runs unless recording: the departure re-runs happen once
per recorded run that leaves its golden, after the session's tests (see bench_trace.py for the cost).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

from . import trace
from .harness import Trajectory
from .report import first_difference


def departing_steps(k: int) -> list[int]:
    """Loss k is the first that differs: step k-1's backward / update made it, or step k's forward."""
    return [s for s in (k - 1, k) if s >= 0]


def _traced_steps(t: Trajectory) -> set[int]:
    return {int(s) for s in (t.trace or {}).get("steps", {})}


def _golden_losses(t: Trajectory) -> list[float] | None:
    """The losses of the golden this run is the run of (same variant, dtype, seed, steps,
    hyperparameters, on the CPU, eager), or None."""
    from . import golden

    if t.device != golden.CANONICAL_DEVICE or t.compile is not None:
        return None
    key = golden.GoldenKey(t.variant, t.dtype, t.seed)
    try:
        gold = golden.read(key)
    except (golden.GoldenError, KeyError):
        return None
    if gold["steps"] != t.steps or json.dumps(gold.get("hyperparameters"), sort_keys=True) != json.dumps(
            t.hyperparameters, sort_keys=True):
        return None
    return gold["losses"]


def rerun_traced(t: Trajectory, steps: Sequence[int]) -> Trajectory:
    """The run of `t` again, in this process, up to the last of `steps`, with those steps traced."""
    from .harness import run

    return run(t.variant, seed=t.seed, device=t.device, dtype=t.dtype, threads=t.threads,
               steps=max(steps) + 1, trace_steps=list(steps), **t.hyperparameters)


def merge(base: dict | None, extra: dict, **head: Any) -> dict:
    """One trace of a run: `extra`'s steps added to `base`'s (the same run, so the same start)."""
    if base is None:
        return {**extra, **head}
    out = {**base, **head}
    out["steps"] = {**base["steps"], **extra["steps"]}
    out["views"] = {**base.get("views", {}), **extra.get("views", {})}
    return dict(out, steps=dict(sorted(out["steps"].items(), key=lambda kv: int(kv[0]))),
                views=dict(sorted(out["views"].items(), key=lambda kv: int(kv[0]))))


def record_departure(t: Trajectory) -> Trajectory:
    """`t`, with the trace of the steps where its losses leave its golden bitwise added (head field
    "departs_from_golden": the first differing loss); `t` itself when it is compiled, has no golden, equals it,
    already has those steps, or a re-run here does not reproduce it (then nothing is claimed)."""
    if t.compile is not None:
        return t  # a compiled run cannot be traced (reference.harness.execute refuses it)
    gold = _golden_losses(t)
    if gold is None:
        return t
    k = first_difference(t.losses, gold)
    if k is None or k >= len(t.losses):
        return t
    steps = departing_steps(k)
    if set(steps) <= _traced_steps(t):
        return dataclasses.replace(t, trace=dict(t.trace, departs_from_golden=k))
    try:
        again = rerun_traced(t, steps)
    except Exception:  # noqa: BLE001 (the recording itself must still be written; compare says what is missing)
        return t
    if first_difference(again.losses, t.losses[: k + 1]) is not None:
        return t  # not reproducible in this process: a trace of another run would mislead
    if t.trace is not None and t.trace["initial"] != again.trace["initial"]:
        return t
    return dataclasses.replace(t, trace=merge(t.trace, again.trace, departs_from_golden=k))


def record_departures(trajectories: Sequence[Trajectory]) -> list[Trajectory]:
    return [record_departure(t) for t in trajectories]


# --- compare: the line for one cell -------------------------------------------------------------------

def _steps_text(steps: Sequence[int]) -> str:
    return f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"


def _restricted(tr: dict, steps: Sequence[int]) -> dict:
    keep = {str(s) for s in steps}
    return dict(tr, steps={s: v for s, v in tr["steps"].items() if s in keep},
                views={s: v for s, v in tr.get("views", {}).items() if s in keep})


def _obtain(t: Trajectory, label: str, steps: list[int], retrace: bool) -> tuple[dict | None, str]:
    """A trace of `steps` of `t`'s run, and how it was obtained (or why not)."""
    if set(steps) <= _traced_steps(t):
        return t.trace, f"{label} recorded"
    import torch

    here = f"torch {torch.__version__}"
    if not retrace:
        return None, f"{label} has no op trace of {_steps_text(steps)} (re-running is off)"
    if t.compile is not None:
        return None, f"{label} has no op trace of {_steps_text(steps)} (a compiled run is not re-run)"
    try:
        again = rerun_traced(t, steps)
    except (ValueError, RuntimeError) as exc:
        return None, f"{label} has no op trace of {_steps_text(steps)}, and it cannot be re-run here ({exc})"
    k = max(steps)
    j = first_difference(again.losses, t.losses[: k + 1])
    if j is not None:
        return None, (f"{label} has no op trace of {_steps_text(steps)}, and {here} here does not reproduce its "
                      f"losses (they differ from step {j}); run compare under its torch {t.torch_version}")
    if t.trace is not None and t.trace.get("initial") != again.trace["initial"]:
        return None, (f"{label} has no op trace of {_steps_text(steps)}; {here} here reproduces its losses but "
                      "not its start state (data, parameters)")
    same_start = "same start state" if t.trace is not None else "start state not recorded"
    return again.trace, (f"{label} re-run here on {here} (recorded on torch {t.torch_version}; losses bitwise "
                         f"equal through step {k}, {same_start})")


def locate_cell(base: Trajectory, run: Trajectory, labels: tuple[str, str], *, retrace: bool = True) -> list[str]:
    """compare's lines for a cell that is not exact: the op line, and where its traces came from.

    The traces compared are of the steps where the losses part ways (departing_steps); where the
    losses are bitwise equal (final parameters differ), of the steps both runs traced."""
    k = first_difference(run.losses, base.losses)
    if k is None:
        if base.trace and run.trace:
            return [trace.localize(base.trace, run.trace, rtol=trace.allowance(run.dtype, base.trace, run.trace)).line()]
        return []
    if not run.trace and not base.trace:  # results of `run --out` / `check --out`: not re-run wholesale
        return [f"op not located: the losses part at step {k}; neither column kept an op trace (results of "
                "`pytest --record-trajectories` keep them)"]
    steps = departing_steps(k)
    got_base, how_base = _obtain(base, labels[0], steps, retrace)
    got_run, how_run = _obtain(run, labels[1], steps, retrace)
    if got_base is None or got_run is None:
        missing = [how for got, how in ((got_base, how_base), (got_run, how_run)) if got is None]
        return [f"op not located: the losses part at step {k}; " + "; ".join(missing)]
    a, b = _restricted(got_base, steps), _restricted(got_run, steps)
    line = trace.localize(a, b, rtol=trace.allowance(run.dtype, a, b)).line()
    return [line, f"(losses part at step {k}; traces of {_steps_text(steps)}: {how_base}; {how_run})"]
