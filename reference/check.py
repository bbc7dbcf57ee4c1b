"""torch-examples-spec check: the installed torch against the shipped goldens, no checkout needed.

    torch-examples-spec check [--device cpu|cuda|all] [--require-cuda] [-k TEXT] [--variants ID,...]
                              [--out DIR [--overwrite]] [--html FILE] [--no-properties] [-q]

Runs every golden comparison of the policy (each variant, dtype and golden seed, on each chosen
device) and a few fast properties on fixed inputs, prints the matrix, and exits 0 (nothing differs
beyond the policy), 1 (something does) or 2 (bad input, or an environment that cannot be checked:
a missing golden, no GPU under --require-cuda).

judge_golden() is the judgement itself, shared with the pytest gate (tests/test_goldens.py): read
the golden, run the variant from the same seed on the device, judge with reference.policy.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import golden, policy, report
from .catalogue import load_variants, specs_dir
from .golden import GoldenError, GoldenKey
from .harness import Trajectory, run as reference_run, thread_count

# Test-only: the name (or a unique part of it) of one of reference.injections.INJECTIONS, applied
# around every run, so that the check can be shown to catch a change. Printed loudly when set.
INJECT_ENV = "TES_CHECK_INJECT"
REQUIRE_CUDA_ENV = "TES_REQUIRE_CUDA"
DEVICE_CHOICES = ("cpu", "cuda", "all")


class CheckError(ValueError):
    """Bad input or an environment that cannot be checked: one line, exit status 2."""


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"CUDA not available: torch {torch.__version__} is a CPU-only build"
    return f"CUDA not available: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"


# --- the judgement (shared with tests/test_goldens.py) -----------------------------------------

@dataclass
class GoldenJudgement:
    key: GoldenKey
    device: str
    verdict: policy.Verdict
    now: Trajectory
    golden: dict[str, Any]  # the golden file, as golden.read returns it
    golden64: list[float] | None  # the float64 golden's losses (the float32 shadow), else None

    @property
    def golden_losses(self) -> list[float]:
        return self.golden["losses"]


def judge_golden(key: GoldenKey, device: str = "cpu", *, runner: Callable[..., Trajectory] | None = None,
                 threads: int | None = None) -> GoldenJudgement:
    """Run `key`'s variant from its seed on `device` and judge it against its golden under the policy.

    runner: reference.run or a memoised stand-in (the pytest gate's cached_run). threads: default the
    gate's (golden.gate_threads(): 1, or TES_THREADS). Raises GoldenError for a missing or corrupt
    golden, before anything runs.
    """
    gold = golden.read(key)
    gold64 = golden.read(GoldenKey(key.variant, "float64", key.seed))["losses"] if key.dtype != "float64" else None
    run = runner or reference_run
    now = run(key.variant, seed=key.seed, dtype=key.dtype, device=device, steps=key.steps,
              threads=golden.gate_threads() if threads is None else threads)
    verdict = policy.compare(key.variant, key.dtype, now.losses, gold["losses"], device=device, golden64=gold64,
                             now_params=golden.params_record(now.params), golden_params=gold["final_params"])
    return GoldenJudgement(key, device, verdict, now, gold, gold64)


# --- fast properties on fixed inputs -------------------------------------------------------------

def _bits(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu()
    return t.view({torch.float32: torch.int32, torch.float64: torch.int64}[t.dtype])


def _fixed_values(dtype: torch.dtype, device: str) -> torch.Tensor:
    """Exact zeros of both signs, infinities, NaN, a subnormal, and 64 seeded normals."""
    info = torch.finfo(dtype)
    specials = [float("-inf"), -1e30, -1.5, -info.tiny / 4, -0.0, 0.0, info.tiny / 4, 1e-3, 2.5, 1e30,
                float("inf"), float("nan")]
    g = torch.Generator().manual_seed(0)
    return torch.cat([torch.tensor(specials, dtype=dtype), torch.randn(64, generator=g, dtype=dtype)]).to(device)


def _grad(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    leaf = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(fn(leaf), leaf, upstream)
    return g


def prop_myrelu_forward(device: str, dtype: torch.dtype) -> None:
    from .variants.mlp_custom_function import MyReLU

    x = _fixed_values(dtype, device)
    if not torch.equal(_bits(MyReLU.apply(x)), _bits(x.clamp(min=0))):
        raise AssertionError("MyReLU(x) and x.clamp(min=0) differ in some bits")


def prop_myrelu_backward(device: str, dtype: torch.dtype) -> None:
    from .torch_facts import clamp_passes_gradient_at_zero
    from .variants.mlp_custom_function import MyReLU

    x = _fixed_values(dtype, device)[:-1]  # no NaN input: its gradient is a convention, not the tutorial's
    x = x[torch.isfinite(x)]
    upstream = torch.linspace(-3, 3, x.numel(), dtype=dtype, device=device)
    mine, clamps = _grad(MyReLU.apply, x, upstream), _grad(lambda t: t.clamp(min=0), x, upstream)
    if not clamp_passes_gradient_at_zero():  # this torch blocks clamp at 0: See Note [clamp gradient at 0]
        away = x != 0
        mine, clamps = mine[away], clamps[away]
    if not torch.equal(_bits(mine), _bits(clamps)):
        raise AssertionError("MyReLU's backward and clamp(min=0)'s differ in some bits")


def prop_gradient_at_zero(device: str, dtype: torch.dtype) -> None:
    from .torch_facts import fact
    from .variants.mlp_custom_function import MyReLU

    x = torch.tensor([-1.0, -0.0, 0.0, 1.0], dtype=dtype, device=device)
    ones = torch.ones_like(x)
    at_zero = fact("clamp_min_grad_at_zero")
    got = {
        "clamp(min=0)": (_grad(lambda t: t.clamp(min=0), x, ones).tolist(), [0.0, at_zero, at_zero, 1.0]),
        "relu": (_grad(torch.relu, x, ones).tolist(), [0.0, 0.0, 0.0, 1.0]),
        "MyReLU": (_grad(MyReLU.apply, x, ones).tolist(), [0.0, 1.0, 1.0, 1.0]),
    }
    wrong = [f"{name} passes {g} at x = [-1, -0, 0, 1], expected {w}" for name, (g, w) in got.items() if g != w]
    if wrong:
        raise AssertionError("; ".join(wrong) + " (specs/torch_behaviour.toml clamp_min_grad_at_zero)")


def _within(what: str, manual: torch.Tensor, auto: torch.Tensor, bound: torch.Tensor, dtype: torch.dtype) -> None:
    """|manual - autograd| <= atol + rtol * sum|terms| (specs/tolerances.toml [gradients])."""
    from .tolerances import tolerance

    rtol, atol = tolerance("gradients", str(dtype).removeprefix("torch."))
    error = (manual.detach().cpu().double() - auto.detach().cpu().double()).abs()
    bad = ~(error <= atol + rtol * bound)
    if bool(bad.any()):
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.numel()} entries differ from autograd by more "
                             f"than atol + rtol * sum|terms| (rtol={rtol:g}, atol={atol:g})")


def prop_mlp_manual_backward(device: str, dtype: torch.dtype) -> None:
    from .harness import full_precision_matmul
    from .variants import mlp_tensor

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 10, generator=g, dtype=dtype), torch.randn(16, 3, generator=g, dtype=dtype)
    w1, w2 = torch.randn(10, 8, generator=g, dtype=dtype), torch.randn(8, 3, generator=g, dtype=dtype)
    dev = torch.device(device)
    with full_precision_matmul(dev):
        x, y = x.to(dev), y.to(dev)
        w1, w2 = w1.to(dev).requires_grad_(), w2.to(dev).requires_grad_()
        h = x.mm(w1)  # seeded normals: no exact zeros, so clamp's convention at 0 does not enter
        h_relu = h.clamp(min=0)
        y_pred = h_relu.mm(w2)
        auto_w1, auto_w2 = torch.autograd.grad((y_pred - y).pow(2).sum(), (w1, w2))
        grad_w1, grad_w2 = mlp_tensor.backward(x, y, w1.detach(), w2.detach(), h.detach(), h_relu.detach(),
                                               y_pred.detach())
    # the same gradients computed with absolute values: what their rounding error scales with
    xd, w2d, hd, yd, pd = (t.detach().cpu().double() for t in (x, w2, h, y, y_pred))
    abs_grad_y = (2.0 * (pd - yd)).abs()
    _within("grad_w1", grad_w1, auto_w1, xd.abs().t().mm(abs_grad_y.mm(w2d.abs().t()) * (hd >= 0)), dtype)
    _within("grad_w2", grad_w2, auto_w2, hd.clamp(min=0).abs().t().mm(abs_grad_y), dtype)


def prop_poly_manual_backward(device: str, dtype: torch.dtype) -> None:
    from .variants import poly_tensor

    x = torch.linspace(-3.14159, 3.14159, 200, dtype=dtype, device=device)
    y = torch.sin(x)
    coefficients = [torch.tensor(v, dtype=dtype, device=device, requires_grad=True) for v in (0.1, -0.4, 0.7, 0.05)]
    a, b, c, d = coefficients
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    auto = torch.autograd.grad((y_pred - y).pow(2).sum(), coefficients)
    manual = poly_tensor.backward(x, y, y_pred.detach())
    abs_grad_y = (2.0 * (y_pred.detach() - y)).abs().cpu().double()
    for k, (name, m, g) in enumerate(zip("abcd", manual, auto)):
        _within(f"grad_{name}", m, g, (abs_grad_y * x.cpu().double().abs() ** k).sum(), dtype)


def prop_legendre_p3(device: str, dtype: torch.dtype) -> None:
    from .variants.poly_custom_function import LegendrePolynomial3

    z = torch.tensor([1.0, -1.0, 0.0, 0.5], dtype=dtype, device=device)
    got = LegendrePolynomial3.apply(z).tolist()
    if got != [1.0, -1.0, 0.0, -0.4375]:
        raise AssertionError(f"P3 at [1, -1, 0, 0.5] is {got}, expected [1, -1, 0, -0.4375]")


@dataclass(frozen=True)
class Property:
    variant: str  # the variant whose code it checks (for --variants)
    name: str
    check: Callable[[str, torch.dtype], None]

    @property
    def label(self) -> str:
        return f"{self.variant}: {self.name}"


PROPERTIES = [
    Property("mlp.custom_function", "MyReLU forward equals clamp(min=0) bit for bit", prop_myrelu_forward),
    Property("mlp.custom_function", "MyReLU backward equals clamp(min=0)'s bit for bit, except at 0 where clamp blocks it",
             prop_myrelu_backward),
    Property("mlp.autograd", "gradient at exactly 0: clamp as specs/torch_behaviour.toml states, relu 0, MyReLU 1",
             prop_gradient_at_zero),
    Property("mlp.tensor", "manual backward equals autograd (specs/tolerances.toml [gradients])",
             prop_mlp_manual_backward),
    Property("poly.tensor", "manual gradients equal autograd (specs/tolerances.toml [gradients])",
             prop_poly_manual_backward),
    Property("poly.custom_function", "LegendrePolynomial3 is Legendre's P3 exactly", prop_legendre_p3),
]
PROPERTY_DTYPES = (torch.float32, torch.float64)


# --- one check -----------------------------------------------------------------------------------

@dataclass
class Item:
    """One row-and-device of the check: a golden comparison or a property."""

    kind: str  # golden | property
    label: str  # "mlp.nn float32 seed 0" | "mlp.tensor: manual backward ..."
    device: str
    dtype: str
    key: GoldenKey | None = None
    prop: Property | None = None
    status: str = "pending"  # exact | close | failed | error | passed
    text: str = ""
    judgement: GoldenJudgement | None = None
    message: str = ""
    seconds: float = 0.0


@dataclass
class Plan:
    devices: list[str]
    skipped_devices: dict[str, str]  # device -> why
    items: list[Item]
    injection: str | None = None
    notes: list[str] = field(default_factory=list)


def golden_label(key: GoldenKey) -> str:
    return f"{key.variant} {key.dtype} seed {key.seed}"


def resolve_injection(raw: str | None) -> str | None:
    if not raw:
        return None
    from .injections import INJECTIONS

    if raw in INJECTIONS:
        return raw
    matches = [name for name in INJECTIONS if raw.lower() in name.lower()]
    if len(matches) != 1:
        raise CheckError(f"{INJECT_ENV}={raw!r} names {'no' if not matches else 'more than one'} injection. "
                         f"Valid choices: {'; '.join(INJECTIONS)}")
    return matches[0]


def make_plan(device: str, *, require_cuda: bool, patterns: Sequence[str] = (), variants: Sequence[str] = (),
              properties: bool = True, injection: str | None = None) -> Plan:
    if device not in DEVICE_CHOICES:
        raise CheckError(f"--device {device!r} is not a choice. Valid choices: {', '.join(DEVICE_CHOICES)}")
    known = load_variants()
    unknown = [v for v in variants if v not in known]
    if unknown:
        raise CheckError(f"--variants: unknown variant {unknown[0]!r}. Valid choices: {', '.join(known)}")
    reason = cuda_unavailable_reason()
    if require_cuda and reason is not None:
        raise CheckError(f"--require-cuda: {reason}; the CUDA checks cannot run here")
    devices, skipped = ["cpu"] if device in ("cpu", "all") else [], {}
    if device in ("cuda", "all"):
        if reason is None:
            devices.append("cuda")
        else:
            skipped["cuda"] = reason
    golden.gate_threads()  # a bad TES_THREADS fails here, before any run

    def wanted(variant: str, label: str) -> bool:
        return (not variants or variant in variants) and (not patterns or any(p in label for p in patterns))

    items = []
    for dev in devices:
        for key in golden.all_keys():
            if dev in known[key.variant].devices and wanted(key.variant, golden_label(key)):
                items.append(Item("golden", golden_label(key), dev, key.dtype, key=key))
        if properties:
            for prop in PROPERTIES:
                if wanted(prop.variant, prop.label):
                    items += [Item("property", prop.label, dev, str(dt).removeprefix("torch."), prop=prop)
                              for dt in PROPERTY_DTYPES]
    if not items and devices:
        what = " ".join([*(f"-k {p!r}" for p in patterns), *(f"--variants {v}" for v in variants)])
        raise CheckError(f"{what} selects nothing. Valid choices: variant ids ({', '.join(known)}), "
                         "or parts of a row label such as 'mlp.nn float32' or 'seed 1'")
    return Plan(devices, skipped, items, injection)


def _run_item(item: Item) -> None:
    start = time.perf_counter()
    if item.kind == "golden":
        try:
            item.judgement = judge_golden(item.key, item.device)
        except (GoldenError, policy.PolicyError) as exc:
            item.status, item.text, item.message = "error", "ERROR", str(exc)
        except Exception as exc:  # noqa: BLE001 - a run that crashes on this torch is a finding, not a bug here
            item.status, item.text = policy.FAILED, "CRASHED"
            item.message = f"{golden_label(item.key)} on {item.device}: the run raised {type(exc).__name__}: {exc}"
        else:
            v = item.judgement.verdict
            item.status = v.status
            if v.status == policy.EXACT:
                item.text = "exact"
            elif v.status == policy.CLOSE:
                item.text = f"close {v.max_rel_error:.1e}" if v.max_rel_error > 0 else "close *"
            else:
                step = "-" if v.first_bad_step is None else str(v.first_bad_step)
                item.text = f"DIFFERS @{step} {v.max_rel_error:.1e}"
            item.message = v.summary().replace(f"{item.key.variant} {item.device} {item.key.dtype}",
                                               f"{item.label} [{item.device}]", 1)
    else:
        try:
            with thread_count(1):
                item.prop.check(item.device, getattr(torch, item.dtype))
        except LookupError as exc:  # specs/torch_behaviour.toml has no row for this torch
            item.status, item.text, item.message = policy.FAILED, "FAILED", f"{item.label} [{item.device} {item.dtype}]: {exc}"
        except AssertionError as exc:
            item.status, item.text, item.message = policy.FAILED, "FAILED", f"{item.label} [{item.device} {item.dtype}]: {exc}"
        else:
            item.status, item.text = "passed", "ok"
    item.seconds = time.perf_counter() - start


def execute(plan: Plan, *, progress: Callable[[int, int, Item], None] | None = None) -> None:
    import contextlib

    from .injections import INJECTIONS

    with INJECTIONS[plan.injection]() if plan.injection else contextlib.nullcontext():
        for i, item in enumerate(plan.items):
            _run_item(item)
            if progress is not None:
                progress(i + 1, len(plan.items), item)


# --- reporting -------------------------------------------------------------------------------------

def device_environment(device: str) -> dict[str, str]:
    env = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu capability": torch.backends.cpu.get_cpu_capability(),
        "threads": str(golden.gate_threads()),
        "device": device,
    }
    if device.startswith("cuda"):
        env["device"] = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
        env["CUDA"] = str(torch.version.cuda)
        env["cuDNN"] = str(torch.backends.cudnn.version())
        env["TF32"] = "off (the harness's full-precision matmul)"
    return env


def golden_environment(items: Sequence[Item]) -> dict[str, str]:
    """What the goldens were recorded with (each field's distinct values)."""
    envs = [it.judgement.golden.get("environment", {}) for it in items if it.judgement is not None]
    names = {"torch": "torch", "numpy": "numpy", "python": "python", "machine": "machine",
             "cpu_capability": "cpu capability", "threads": "threads"}
    out = {label: ", ".join(sorted({str(e[k]) for e in envs if k in e})) for k, label in names.items()}
    out["device"] = golden.CANONICAL_DEVICE + " (recorded)"
    out["goldens"] = str(golden.goldens_dir())
    return out


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    return lines + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def differing(plan: Plan) -> list[Item]:
    return [it for it in plan.items if it.status == policy.FAILED]


def exit_status(plan: Plan) -> int:
    if any(it.status == "error" for it in plan.items):
        return 2
    return 1 if differing(plan) else 0


def closing_line(plan: Plan) -> str:
    bad = differing(plan)
    if any(it.status == "error" for it in plan.items):
        return "ERROR: the check could not judge every row (see problems above)"
    if bad:
        names = list(dict.fromkeys(f"{it.label} [{it.device}{'' if it.kind == 'golden' else ' ' + it.dtype}]"
                                   for it in bad))
        variants = sorted({it.key.variant if it.key else it.prop.variant for it in bad})
        return f"DIFFERS beyond the policy in {', '.join(variants)}: {'; '.join(names)}"
    return "nothing differs beyond the policy"


def text_report(plan: Plan) -> list[str]:
    lines = []
    goldens = [it for it in plan.items if it.kind == "golden"]
    rows = list(dict.fromkeys(it.label for it in goldens))
    by = {(it.label, it.device): it for it in goldens}
    if rows:
        lines += _table(["golden", *plan.devices],
                        [[r, *[by[r, d].text if (r, d) in by else "n/a" for d in plan.devices]] for r in rows])
    props = [it for it in plan.items if it.kind == "property"]
    if props:
        columns = list(dict.fromkeys(f"{it.device} {it.dtype}" for it in props))
        cells = {(it.label, f"{it.device} {it.dtype}"): it.text for it in props}
        labels = list(dict.fromkeys(it.label for it in props))
        lines += [""] + _table(["property", *columns], [[p, *[cells.get((p, c), "-") for c in columns]] for p in labels])
    counts: dict[str, int] = {}
    for it in goldens:
        counts[it.status] = counts.get(it.status, 0) + 1
    summary = ", ".join(f"{counts[s]} {name}" for s, name in
                        ((policy.EXACT, "exact"), (policy.CLOSE, "close"), (policy.FAILED, "differ"), ("error", "errors"))
                        if counts.get(s))
    passed = sum(it.status == "passed" for it in props)
    lines += ["", f"goldens: {summary or 'none run'}; properties: "
                  + (f"{passed} of {len(props)} passed" if props else "none run")]
    details = [("! " if it.status == policy.FAILED else "  ") + it.message
               for it in plan.items if it.status in (policy.CLOSE, policy.FAILED) and it.message]
    if details:
        lines += ["", "differences (! = beyond the policy):", *details]
    problems = [it.message for it in plan.items if it.status == "error"]
    if problems:
        lines += ["", "problems:", *[f"! {p}" for p in problems]]
    lines += ["", closing_line(plan)]
    return lines


def html_page(plan: Plan) -> report.Page:
    goldens = [it for it in plan.items if it.kind == "golden"]
    rows = list(dict.fromkeys(it.label for it in goldens))
    by = {(it.label, it.device): it for it in goldens}
    columns = [report.Column("golden", golden_environment(goldens))]
    columns += [report.Column(d, device_environment(d)) for d in plan.devices]
    page_rows = []
    for label in rows:
        cells = [report.Cell("baseline", "golden")]
        for d in plan.devices:
            it = by.get((label, d))
            if it is None:
                cells.append(report.Cell("skipped", "n/a"))
                continue
            cell = report.Cell(it.status, it.text, details=[it.message] if it.message else [])
            j = it.judgement
            if j is not None and it.status in report.DIFFERING:
                curves = {"golden": j.golden_losses, f"now ({d})": j.now.losses}
                if j.golden64 is not None:
                    curves["float64 golden"] = j.golden64
                cell.curves, cell.reference = curves, "golden"
                cell.first_difference = report.first_difference(j.now.losses, j.golden_losses)
                cell.first_bad_step = j.verdict.first_bad_step
                cell.details = [j.verdict.summary(), "", policy.checkpoint_table(
                    j.now.losses, j.golden_losses, first_bad=j.verdict.first_bad_step)]
            cells.append(cell)
        page_rows.append((label, cells))
    notes = [f"torch-examples-spec check of torch {torch.__version__} against the goldens and policy it ships "
             f"(specs: {specs_dir()})"]
    if plan.injection:
        notes.insert(0, f"INJECTED CHANGE ({INJECT_ENV}): {plan.injection}: these results are a test of the check")
    notes += [f"{d}: skipped: {why}" for d, why in plan.skipped_devices.items()]
    props = [it for it in plan.items if it.kind == "property"]
    extra = [("Properties", ["property", "device", "dtype", "result", "detail"],
              [[it.label, it.device, it.dtype, it.text, it.message] for it in props])] if props else []
    return report.Page("torch-examples-spec check", columns, page_rows, closing_line(plan), exit_status(plan) == 0,
                       notes=notes, extra_tables=extra)


def write_results(out: Path, plan: Plan, *, overwrite: bool) -> list[Path]:
    """DIR/check-<device>.json, a results file for compare (final parameters as digests)."""
    from .trajectory import save_trajectories

    written = []
    for device in plan.devices:
        runs = [it.judgement.now for it in plan.items if it.device == device and it.judgement is not None]
        if runs:
            path = out / f"check-{device}.json"
            save_trajectories(path, runs, full_params=False)
            written.append(path)
    return written


# --- command line ----------------------------------------------------------------------------------

def _progress(stream) -> Callable[[int, int, Item], None]:
    width = None

    def show(done: int, total: int, item: Item) -> None:
        nonlocal width
        width = width or len(str(total))
        what = item.label if item.kind == "golden" else f"{item.label} ({item.dtype})"
        stream.write(f"[{done:>{width}}/{total}] {item.device:<4} {what}: {item.text} ({item.seconds:.1f} s)\n")
        stream.flush()

    return show


def cmd_check(args: argparse.Namespace) -> int:
    injection = resolve_injection(os.environ.get(INJECT_ENV))
    variants = [v for chunk in args.variants for v in chunk.split(",") if v]
    plan = make_plan(args.device, require_cuda=args.require_cuda, patterns=args.k, variants=variants,
                     properties=not args.no_properties, injection=injection)
    out = None if args.out is None else Path(args.out)
    if out is not None:
        if out.exists() and not out.is_dir():
            raise CheckError(f"--out {out} is a file; name a directory (check writes check-<device>.json into it)")
        existing = [out / f"check-{d}.json" for d in plan.devices if (out / f"check-{d}.json").exists()]
        if existing and not args.overwrite:
            raise CheckError(f"--out: {existing[0]} exists; pass --overwrite to replace it")
    if args.html is not None and Path(args.html).is_dir():
        raise CheckError(f"--html {args.html} is a directory; name a file, e.g. {Path(args.html) / 'check.html'}")

    env = device_environment("cpu")
    print(f"check: torch {env['torch']}, numpy {env['numpy']}, python {env['python']}, {env['machine']} "
          f"{env['cpu capability']}, threads {env['threads']}; devices: {', '.join(plan.devices) or 'none'}", flush=True)
    for device, why in plan.skipped_devices.items():
        print(f"{device}: skipped: {why}", flush=True)
    if injection:
        print(f"check: INJECTED CHANGE ({INJECT_ENV}): {injection}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    execute(plan, progress=None if args.quiet else _progress(sys.stderr))
    print("\n".join(["", *text_report(plan)]))
    print(f"({len(plan.items)} checks in {time.perf_counter() - start:.0f} s)")
    if out is not None:
        for path in write_results(out, plan, overwrite=args.overwrite):
            print(f"wrote {path}  (python -m reference compare {out} OTHER_DIR)")
    if args.html is not None:
        print(f"wrote {report.write(args.html, html_page(plan))}")
    return exit_status(plan)


def add_check_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="check the installed torch against the shipped goldens (no checkout needed)",
        description="Run every golden comparison (each variant, dtype and golden seed) and fast properties "
        "against the installed torch, judged by the shipped policy. Exit status: 0 nothing differs beyond the "
        "policy, 1 something does, 2 bad input or an environment that cannot be checked.",
    )
    p.add_argument("--device", default="cpu", metavar="{cpu,cuda,all}",
                   help="where to run: cpu (default), cuda, or all (cpu, and cuda when usable)")
    p.add_argument("--require-cuda", action="store_true",
                   default=os.environ.get(REQUIRE_CUDA_ENV, "") not in ("", "0"),
                   help=f"exit 2 at once when CUDA is not usable, instead of skipping it (also: {REQUIRE_CUDA_ENV}=1)")
    p.add_argument("-k", action="append", default=[], metavar="TEXT",
                   help="only rows whose label contains TEXT, e.g. 'mlp.nn float32' (repeatable: any of them)")
    p.add_argument("--variants", action="append", default=[], metavar="ID[,ID...]",
                   help="only these variants (and the properties of their code)")
    p.add_argument("--no-properties", action="store_true", help="golden comparisons only")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the runs to DIR/check-<device>.json, for `compare DIR OTHER_DIR`")
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace earlier check-*.json files")
    p.add_argument("--html", default=None, metavar="FILE",
                   help="write a self-contained HTML report (matrix, curves of what differs, environments)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines (stderr)")
    p.set_defaults(func=cmd_check)
