"""Validating an installed torch (the `check` command's work): every golden comparison of the policy on
each chosen device, and the properties on fixed inputs, gathered into one Matrix (a "golden"
reference column, a column per device).

    v = select("all", require_cuda=False)     # what to run: goldens x devices, properties
    perform(v, progress=...)                   # run and judge each
    v.matrix()                                 # -> Matrix, for reference/report/
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..catalogue import load_variants, specs_dir
from ..errors import UsageError
from ..harness.planning import cuda_unavailable_reason
from ..harness.threads import gate_threads
from ..harness.trajectory import Trajectory
from .goldens import CANONICAL_DEVICE, GoldenError, GoldenJudgement, GoldenKey, all_keys, goldens_dir, judge_golden
from .locate import explain_golden_failure
from .expectations import Choice, ExpectationSet, choose, judge_exact
from .matrix import Cell, Column, Curves, Matrix, PropertyResult, Row, baseline_cell, missing_cell, verdict_cell
from .properties import PROPERTIES, PROPERTY_DTYPES, Property, check_property
from .rules import PolicyError, rule_for
from .status import Status

DEVICE_CHOICES = ("cpu", "cuda", "all")


@dataclass
class Item:
    """One golden on one device, or one property on one device and dtype."""

    label: str  # "mlp.nn float32 seed 0" | "mlp.tensor: manual backward ..."
    device: str
    dtype: str
    key: GoldenKey | None = None
    prop: Property | None = None
    cell: Cell | None = None  # a golden's judgement
    judgement: GoldenJudgement | None = None
    result: PropertyResult | None = None
    seconds: float = 0.0

    @property
    def text(self) -> str:
        if self.cell is not None:
            return self.cell.text
        return "" if self.result is None else ("ok" if self.result.passed else "FAILED")


@dataclass
class Validation:
    devices: list[str]
    skipped: dict[str, str]  # device -> why it was not checked
    items: list[Item] = field(default_factory=list)
    # where expectation sets were given (check --expect): per device, the set that judges it exactly, or why none
    choices: dict[str, Choice] = field(default_factory=dict)

    def expect(self, sets: Sequence[ExpectationSet]) -> None:
        """Judge each device against the set whose fingerprint matches this environment's, if any."""
        from ..harness.environment import describe

        for device in self.devices:
            self.choices[device] = choose(sets, device, {**describe(device), "threads": gate_threads()})

    def goldens(self) -> list[Item]:
        return [it for it in self.items if it.key is not None]

    def runs(self, device: str) -> list[Trajectory]:
        return [it.judgement.now for it in self.goldens() if it.device == device and it.judgement is not None]

    def matrix(self, title: str = "torch-examples-spec check") -> Matrix:
        goldens = self.goldens()
        labels = list(dict.fromkeys(it.label for it in goldens))
        by = {(it.label, it.device): it for it in goldens}
        columns = [Column("golden", _golden_environment(goldens), _golden_record(goldens), reference=True)]
        columns += [Column(d, device_environment(d), _run_record(self, d)) for d in self.devices]
        rows = []
        for label in labels:
            cells = [baseline_cell("golden")]
            for d in self.devices:
                it = by.get((label, d))
                cells.append(it.cell if it is not None and it.cell is not None
                             else missing_cell(f"{label} does not run on {d}", "n/a"))
            rows.append(Row(label, cells))
        matrix = Matrix(title, columns, rows, [it.result for it in self.items if it.result is not None],
                        reference_cells_shown=False)
        matrix.notes = [f"each run judged against the golden the package ships (specs: {specs_dir()}), by the "
                        "calibrated row of its variant and dtype"]
        matrix.notes += [f"{d}: skipped: {why}" for d, why in self.skipped.items()]
        matrix.notes += [choice.note for choice in self.choices.values()]
        matrix.problems = [it.cell.reason for it in goldens if it.cell is not None and it.cell.text == "ERROR"]
        return matrix


def select(device: str, *, require_cuda: bool = False, patterns: Sequence[str] = (), variants: Sequence[str] = (),
           properties: bool = True) -> Validation:
    """What `check` runs, every argument checked first (UsageError: one line, exit status 2)."""
    if device not in DEVICE_CHOICES:
        raise UsageError(f"--device {device!r} is not a choice. Valid choices: {', '.join(DEVICE_CHOICES)}")
    known = load_variants()
    unknown = [v for v in variants if v not in known]
    if unknown:
        raise UsageError(f"--variants: unknown variant {unknown[0]!r}. Valid choices: {', '.join(known)}")
    reason = cuda_unavailable_reason()
    if reason is not None and (require_cuda or device == "cuda"):
        flag = "--require-cuda" if require_cuda else "--device cuda"
        raise UsageError(f"{flag}: {reason}; nothing to check on CUDA here (--device all checks the CPU and "
                         "says why CUDA was skipped)")
    devices = ["cpu"] if device in ("cpu", "all") else []
    skipped = {}
    if device in ("cuda", "all"):
        if reason is None:
            devices.append("cuda")
        else:
            skipped["cuda"] = reason
    try:
        gate_threads()  # a bad TES_THREADS fails here, before any run
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def wanted(variant: str, label: str) -> bool:
        return (not variants or variant in variants) and (not patterns or any(p in label for p in patterns))

    def wanted_property(prop: Property) -> bool:
        return ((not variants or any(prop.concerns(v) for v in variants))
                and (not patterns or any(p in prop.label for p in patterns)))

    items = []
    for dev in devices:
        # properties first: a golden that diverges can then name a building block that failed
        if properties:
            for prop in PROPERTIES:
                if wanted_property(prop):
                    dtypes = PROPERTY_DTYPES[:1] if prop.dtype_free else PROPERTY_DTYPES
                    items += [Item(prop.label, dev, str(dt).removeprefix("torch."), prop=prop) for dt in dtypes]
        for key in all_keys():
            if dev in known[key.variant].devices and wanted(key.variant, key.label):
                items.append(Item(key.label, dev, key.dtype, key=key))
    if not items:
        what = " ".join([*(f"-k {p!r}" for p in patterns), *(f"--variants {v}" for v in variants)])
        raise UsageError(f"{what} selects nothing. Valid choices: variant ids ({', '.join(known)}), "
                         "or parts of a row label such as 'mlp.nn float32' or 'seed 1'")
    return Validation(devices, skipped, items)


def failed_blocks(results: Sequence[PropertyResult], variant: str) -> list[str]:
    """Lines naming the building blocks `variant` uses that failed: what to look at first."""
    from .blocks import blocks_of

    used = set(blocks_of(variant))
    return [f"building block {r.variant} fails (look here first): {r.message}" for r in results
            if not r.passed and r.variant in used]


def _golden_cell(item: Item, runner: Callable[..., Trajectory] | None, locate: bool, choice: Choice | None) -> None:
    key = item.key
    try:
        j = judge_golden(key, item.device, runner=runner)
    except GoldenError as exc:
        item.cell = missing_cell(str(exc), "ERROR")
        return
    except Exception as exc:  # noqa: BLE001 - a run that crashes on this torch is a finding, not a bug here
        item.cell = Cell(Status.DIVERGED, "CRASHED", reason=f"the run raised {type(exc).__name__}: {exc}")
        return
    item.judgement = j
    try:
        rule = rule_for(key.variant, key.dtype, item.device)
    except PolicyError:
        rule = None
    curves = Curves("golden", f"now ({item.device})", j.golden_losses, j.now.losses, j.golden64, rule)
    item.cell = verdict_cell(j.verdict, curves=curves)
    if choice is not None and choice.chosen is not None:  # an expectation of this environment: bit for bit
        cell = judge_exact(choice.chosen, item.device, j.now, j.verdict.status)
        expected = choice.chosen.runs.get(item.device, {}).get(key.label)
        if expected is not None:
            cell.curves = Curves("expectation", f"now ({item.device})", expected[0].losses, j.now.losses)
        item.cell = cell
        return
    if locate and j.verdict.status is Status.DIVERGED:
        item.cell.located = explain_golden_failure(key, dict(device=item.device, threads=j.now.threads), runner)


def recording(runner: Callable[..., Trajectory] | None = None) -> Callable[..., Trajectory]:
    """`runner` (default: reference.run) keeping what compare needs of each run: its state
    fingerprints and the op traces of its first steps (as the goldens keep)."""
    from .rules import trace_steps

    def run(variant: str, **kwargs: Any) -> Trajectory:
        if runner is None:
            from ..harness.running import run as base
        else:
            base = runner
        steps = kwargs.get("steps") or load_variants()[variant].steps
        return base(variant, record_state=True, trace_steps=range(min(trace_steps(), steps)), **kwargs)

    return run


def perform(validation: Validation, *, runner: Callable[..., Trajectory] | None = None,
            progress: Callable[[int, int, Item], None] | None = None, locate: bool = True) -> None:
    """Run and judge every item. runner: reference.run or a memoised stand-in (recording() keeps what
    compare needs); locate: name the op where a diverged golden parts (a re-run of its first steps)."""
    total = len(validation.items)
    for i, item in enumerate(validation.items):
        start = time.perf_counter()
        if item.key is not None:
            _golden_cell(item, runner, locate, validation.choices.get(item.device))
            if item.cell is not None and item.cell.status is Status.DIVERGED:
                done = [it.result for it in validation.items[:i] if it.result is not None and it.device == item.device]
                item.cell.located = failed_blocks(done, item.key.variant) + item.cell.located
        else:
            passed, message = check_property(item.prop, item.device, item.dtype)
            item.result = PropertyResult(item.label, item.prop.variant, item.device, item.dtype, passed, message)
        item.seconds = time.perf_counter() - start
        if progress is not None:
            progress(i + 1, total, item)


def repeats(validation: Validation, times: int, runner: Callable[..., Trajectory] | None = None) -> dict[str, list]:
    """Per device, each golden run with `times - 1` more of it (fresh runs: is this box bitwise
    repeatable?), for an expectation set (reference/judge/expectations.py)."""
    run = recording(runner)
    out: dict[str, list] = {}
    for it in validation.goldens():
        if it.judgement is None:
            continue
        now = it.judgement.now
        again = [run(now.variant, seed=now.seed, dtype=now.dtype, device=it.device, steps=now.steps,
                     threads=now.threads) for _ in range(times - 1)]
        out.setdefault(it.device, []).append([now, *again])
    return out


# --- the environment of each column ---------------------------------------------------------------

def device_environment(device: str) -> dict[str, str]:
    import platform

    import numpy as np
    import torch

    env = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu capability": torch.backends.cpu.get_cpu_capability(),
        "threads": str(gate_threads()),
        "device": device,
    }
    if device.startswith("cuda"):
        env["device"] = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
        env["CUDA"] = str(torch.version.cuda)
        env["cuDNN"] = str(torch.backends.cudnn.version())
        env["TF32"] = "off (the harness's full-precision matmul)"
    return env


def _golden_environment(items: Sequence[Item]) -> dict[str, str]:
    """What the goldens were recorded with (each field's distinct values)."""
    envs = [it.judgement.golden.get("environment", {}) for it in items if it.judgement is not None]
    names = {"torch": "torch", "numpy": "numpy", "python": "python", "machine": "machine",
             "cpu_capability": "cpu capability", "threads": "threads"}
    out = {label: ", ".join(sorted({str(e[k]) for e in envs if k in e})) for k, label in names.items()}
    out["device"] = CANONICAL_DEVICE + " (where the goldens were recorded)"
    out["goldens"] = str(goldens_dir())
    return out


def _golden_record(items: Sequence[Item]) -> dict[str, Any]:
    judged = [it for it in items if it.judgement is not None]
    return dict(judged[0].judgement.golden.get("environment", {})) if judged else {}


def _run_record(v: Validation, device: str) -> dict[str, Any]:
    runs = v.runs(device)
    return dict(runs[0].environment) if runs else {}
