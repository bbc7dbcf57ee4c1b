"""Which op made two runs part: the step where their states part, traced on both sides.

The step to trace (See Note [the state parts before the loss]): with per-step state fingerprints on
both sides (Trajectory.state_digests), the first step whose forward changes a loss or whose update
changes the state; without them, the steps around the first differing loss, and a consumer found
there is reported as such ("parameters may already differ entering step k"), never as the origin.

Traces of that step come from where they are kept:

recorded   when recording (`pytest --record-trajectories DIR`), a run that parts from its golden also
           keeps the trace of the step where it parts: record_departures().
re-run     when comparing, a column without that trace is re-run here, in this process, up to that
           step with tracing on, if this torch reproduces that column's losses (and state
           fingerprints) bitwise through the step and starts from the same state: locate_cell() says
           so in its output, naming this torch.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Mapping, Sequence

from ..harness.state import first_state_difference
from ..harness.trajectory import Trajectory
from ..trace import compare_traces
from .checks import first_difference
from .goldens import CANONICAL_DEVICE, GoldenError, GoldenKey, read, read_trace

Runner = Callable[..., Trajectory]


def _default_runner() -> Runner:
    from ..harness.running import run

    return run


def traced_run(variant_id: str, step: int, *, runner: Runner | None = None, **run_args: Any) -> dict:
    """The op trace of `step` of a run (the run stops after it)."""
    run_args = {k: v for k, v in run_args.items() if k not in ("steps", "trace_steps")}
    return (runner or _default_runner())(variant_id, steps=step + 1, trace_steps=[step], **run_args).trace


@dataclasses.dataclass(frozen=True)
class Parting:
    """Where two runs part: the steps to trace, and what the choice rests on."""

    steps: list[int]
    first_loss: int | None  # the first loss not bitwise equal
    first_state: int | None  # the first step whose entering state differs (None: equal or not recorded)
    from_state: bool  # both runs kept state fingerprints

    def text(self) -> str:
        if self.from_state:
            where = ("the state differs from the start" if self.first_state == 0 else
                     f"the state first differs entering step {self.first_state}" if self.first_state is not None
                     else "the states never differ")
            loss = "" if self.first_loss is None else f", the losses at step {self.first_loss}"
            return f"{where}{loss}"
        return f"the losses part at step {self.first_loss}"


def parting(base: Trajectory, run: Trajectory) -> Parting | None:
    """Where `run` parts from `base`, or None when neither losses nor recorded states differ."""
    k = first_difference(run.losses, base.losses)
    both = bool(base.state_digests) and bool(run.state_digests)
    s = first_state_difference(base.state_digests, run.state_digests) if both else None
    if both:
        if k is None and s is None:
            return None
        # a forward op changes loss k; an update changes the state entering the next step
        candidates = [x for x in (k, None if s is None else max(s - 1, 0)) if x is not None]
        step = min(candidates)
        return Parting([min(step, run.steps - 1)], k, s, True)
    if k is None:
        return None
    return Parting([t for t in (k - 1, k) if 0 <= t < run.steps], k, None, False)


def _traced_steps(t: Trajectory) -> set[int]:
    return {int(s) for s in (t.trace or {}).get("steps", {})}


def rerun_traced(t: Trajectory, steps: Sequence[int], runner: Runner | None = None) -> Trajectory:
    """The run of `t` again, in this process, up to the last of `steps`, with those steps traced and
    its state recorded."""
    return (runner or _default_runner())(
        t.variant, seed=t.seed, device=t.device, dtype=t.dtype, threads=t.threads, steps=max(steps) + 1,
        trace_steps=list(steps), record_state=True, **t.hyperparameters)


def _reproduces(again: Trajectory, t: Trajectory, k: int) -> str | None:
    """Why `again` (a re-run through step k) is not `t`'s run, or None."""
    j = first_difference(again.losses, t.losses[: k + 1])
    if j is not None:
        return f"they differ from step {j}"
    if t.state_digests and again.state_digests and again.state_digests[: k + 1] != t.state_digests[: k + 1]:
        s = first_state_difference(again.state_digests[: k + 1], t.state_digests[: k + 1])
        return f"the losses agree but the state differs entering step {s}"
    return None


def merge(base: dict | None, extra: dict, **head: Any) -> dict:
    """One trace of a run: `extra`'s steps added to `base`'s (the same run, so the same start)."""
    if base is None:
        return {**extra, **head}
    out = {**base, **head}
    out["steps"] = {**base["steps"], **extra["steps"]}
    out["views"] = {**base.get("views", {}), **extra.get("views", {})}
    return dict(out, steps=dict(sorted(out["steps"].items(), key=lambda kv: int(kv[0]))),
                views=dict(sorted(out["views"].items(), key=lambda kv: int(kv[0]))))


# --- recording: runs that part from their golden keep the trace of where ---------------------------

def _golden_of(t: Trajectory) -> Trajectory | None:
    """The golden this run is the run of (same variant, dtype, seed, steps, hyperparameters, on the
    CPU, eager), as a Trajectory of its losses and state digests; or None."""
    if t.device != CANONICAL_DEVICE or t.compile is not None:
        return None
    try:
        gold = read(GoldenKey(t.variant, t.dtype, t.seed))
    except (GoldenError, KeyError):
        return None
    if gold["steps"] != t.steps or json.dumps(gold.get("hyperparameters"), sort_keys=True) != json.dumps(
            t.hyperparameters, sort_keys=True):
        return None
    return dataclasses.replace(t, losses=gold["losses"], state_digests=gold.get("state_digests"), trace=None)


def record_departure(t: Trajectory, runner: Runner | None = None) -> Trajectory:
    """`t`, with the trace of the step where it parts from its golden added (head field
    "departs_from_golden": that step); `t` itself when it is compiled, has no golden, equals it,
    already has that trace, or a re-run here does not reproduce it (then nothing is claimed)."""
    if t.compile is not None:
        return t  # a compiled run cannot be traced (reference.harness.running refuses it)
    gold = _golden_of(t)
    where = None if gold is None else parting(gold, t)
    if where is None:
        return t
    steps = where.steps
    if set(steps) <= _traced_steps(t):
        return dataclasses.replace(t, trace=dict(t.trace, departs_from_golden=steps[0]))
    try:
        again = rerun_traced(t, steps, runner)
    except Exception:  # noqa: BLE001 (the recording itself must still be written; compare says what is missing)
        return t
    if _reproduces(again, t, max(steps)) is not None:
        return t  # not reproducible in this process: a trace of another run would mislead
    if t.trace is not None and t.trace["initial"] != again.trace["initial"]:
        return t
    return dataclasses.replace(t, trace=merge(t.trace, again.trace, departs_from_golden=steps[0]))


def record_departures(trajectories: Sequence[Trajectory], runner: Runner | None = None) -> list[Trajectory]:
    return [record_departure(t, runner) for t in trajectories]


# --- compare: the lines for one cell -------------------------------------------------------------

def _steps_text(steps: Sequence[int]) -> str:
    return f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"


def _restricted(tr: dict, steps: Sequence[int]) -> dict:
    keep = {str(s) for s in steps}
    return dict(tr, steps={s: v for s, v in tr["steps"].items() if s in keep},
                views={s: v for s, v in tr.get("views", {}).items() if s in keep})


def _obtain(t: Trajectory, label: str, steps: list[int], retrace: bool,
            runner: Runner | None) -> tuple[dict | None, str]:
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
        again = rerun_traced(t, steps, runner)
    except (ValueError, RuntimeError) as exc:
        return None, f"{label} has no op trace of {_steps_text(steps)}, and it cannot be re-run here ({exc})"
    k = max(steps)
    why = _reproduces(again, t, k)
    if why is not None:
        return None, (f"{label} has no op trace of {_steps_text(steps)}, and {here} here does not reproduce its "
                      f"run ({why}); run compare under its torch {t.torch_version}")
    if t.trace is not None and t.trace.get("initial") != again.trace["initial"]:
        return None, (f"{label} has no op trace of {_steps_text(steps)}; {here} here reproduces its losses but "
                      "not its start state (data, parameters)")
    same_start = "same start state" if t.trace is not None else "start state not recorded"
    checked = "losses and state" if t.state_digests else "losses"
    return again.trace, (f"{label} re-run here on {here} (recorded on torch {t.torch_version}; {checked} bitwise "
                         f"equal through step {k}, {same_start})")


def _qualified(line: str, where: Parting) -> str:
    """A consumer found where no state fingerprints tell the origin: say the state may differ already."""
    if where.from_state or "(a consumer)" not in line:
        return line
    entering = where.steps[0]
    return (f"{line}; parameters may already differ entering step {entering}: neither run kept per-step state "
            "fingerprints to find the step where they part")


def locate_cell(base: Trajectory, run: Trajectory, labels: tuple[str, str], *, retrace: bool = True,
                runner: Runner | None = None) -> list[str]:
    """compare's lines for a cell that is not exact: the op line, and where its traces came from."""
    where = parting(base, run)
    if where is None:  # losses and states equal (final parameters differ): the steps both traced
        if base.trace and run.trace:
            return [compare_traces(base.trace, run.trace, run.dtype).line()]
        return []
    if not run.trace and not base.trace:  # results of `run --out` / `check --out`: not re-run wholesale
        return [f"op not located: {where.text()} (step {where.steps[0]}); neither column kept an op trace (results "
                "of `pytest --record-trajectories` keep them)"]
    steps = where.steps
    got_base, how_base = _obtain(base, labels[0], steps, retrace, runner)
    got_run, how_run = _obtain(run, labels[1], steps, retrace, runner)
    if got_base is None or got_run is None:
        missing = [how for got, how in ((got_base, how_base), (got_run, how_run)) if got is None]
        return [f"op not located: {where.text()}; " + "; ".join(missing)]
    a, b = _restricted(got_base, steps), _restricted(got_run, steps)
    line = compare_traces(a, b, run.dtype).line()
    return [_qualified(line, where), f"({where.text()}; traces of {_steps_text(steps)}: {how_base}; {how_run})"]


# --- the golden fixture: the line for a failing golden ---------------------------------------------

def explain_golden_failure(key: GoldenKey, now_run_args: Mapping[str, Any], runner: Runner | None = None) -> list[str]:
    """The lines for a failing golden: where the run's state first parts from the golden's (when the
    golden keeps state fingerprints), and the first differing op of the steps the golden keeps an
    op trace of, re-run here as the failing run was asked for (now_run_args: device, threads, ...)."""
    run = runner or _default_runner()
    args = {k: v for k, v in now_run_args.items() if k not in ("steps", "trace_steps", "seed", "dtype", "record_state")}
    lines = []
    try:
        gold = read(key)
        baseline = read_trace(key)
    except GoldenError as exc:
        return [str(exc)]
    kept = sorted(int(s) for s in baseline["steps"])
    if gold.get("state_digests"):
        now = run(key.variant, seed=key.seed, dtype=key.dtype, steps=key.steps, record_state=True, **args)
        s = first_state_difference(gold["state_digests"], now.state_digests)
        k = first_difference(now.losses, gold["losses"])
        if s is None and k is None:
            lines.append("the run's losses and state fingerprints equal the golden's at every step")
        else:
            lines.append("state: " + Parting([], k, s, True).text() + " (per-step state fingerprints)")
    else:
        lines.append("state: the golden keeps no per-step state fingerprints (recorded before they were kept)")
    now_trace = run(key.variant, seed=key.seed, dtype=key.dtype, steps=max(len(kept), 1),
                    trace_steps=kept, **args).trace
    finding = compare_traces(baseline, now_trace, key.dtype)
    lines.append(finding.line() + ("" if finding.found else f" (the golden keeps the op trace of steps "
                                                            f"{kept[0]}-{kept[-1]} only)"))
    return lines

