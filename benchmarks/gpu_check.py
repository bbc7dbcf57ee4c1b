"""The one-shot GPU check (issue 15): everything a GPU session should measure, in one call.

    benchmarks/gpu_check.sh [OUT_DIR]                       # on the GPU box, from the repo root
    PYTHONPATH=. python benchmarks/gpu_check.py --out DIR [--dry-run] [--variants ID ...] [--steps N]
                                                [--skip SECTION ...] [--budget-s S] [--repeat N] [--overwrite]

Sections, in order, each written to DIR/gpu_check.json as soon as it is done (a timeout keeps what
was measured); pytest logs and JUnit XML beside it:
  pytest_cuda          pytest -m cuda --require-cuda: the CUDA gate, TF32 off (must pass)
  pytest_tf32_switch   tests/test_tf32.py on this box's torch: the switch's restore, the probe
  devices              every variant that runs on CUDA, both dtypes, CUDA run vs CPU run from the same
                       start at the golden length: per-step relative difference (the early window
                       in full), first steps beyond thresholds, the distance from the CPU float64
                       run, the verdicts of the CUDA and of the CPU policy rows, TF32 read back, probe
  tf32_on              float32 again with TF32 matmul ON: which variants the policy catches, from which step
  pytest_cuda_tf32_on  the CUDA gate with TF32 ON (benchmarks/tf32_on_plugin.py): must fail
  mnist_speed          one MNIST epoch (embedded digits), CPU vs CUDA, median of --repeat (3)
and a summary with the suggested CUDA policy rows (the CPU calibration's margins).

--dry-run runs the measuring sections on the CPU in place of CUDA (TF32 emulated for tf32_on) and
skips the pytest sections: how this script is tested without a GPU (tests/test_gpu_check.py).
Without a GPU and without --dry-run it refuses in one line and exits 3; bad arguments exit 2.
Exit 0 when the gate behaved (pytest_cuda passed, pytest_cuda_tf32_on failed), else 1.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECTIONS = ("pytest_cuda", "pytest_tf32_switch", "devices", "tf32_on", "pytest_cuda_tf32_on", "mnist_speed")
PYTEST_SECTIONS = {"pytest_cuda", "pytest_tf32_switch", "pytest_cuda_tf32_on"}
THRESHOLDS = {"float32": (2e-6, 2e-5, 1e-4), "float64": (1e-9, 1e-8, 1e-6)}
# the CPU calibration's margins (specs/golden_policy.toml): float32 window rtol 15x the worst benign
# drift, float64 rtol >= 6x it
MARGIN = {"float32": 15.0, "float64": 6.0}
TF32_ENV = ("NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "CUBLAS_WORKSPACE_CONFIG",
            "TORCH_BLAS_PREFER_CUBLASLT", "CUDA_VISIBLE_DEVICES")
REPORT = "gpu_check.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="gpu_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or None,
                    help="output folder (default: $OUT); created if missing")
    ap.add_argument("--dry-run", action="store_true", help="the CPU in place of CUDA; no pytest sections")
    ap.add_argument("--variants", nargs="+", metavar="ID", help="variant ids (default: every one that runs on CUDA)")
    ap.add_argument("--steps", type=int, default=None, help="at most this many steps a run (default: the golden length)")
    ap.add_argument("--skip", nargs="+", default=[], metavar="SECTION", help=f"sections to leave out: {', '.join(SECTIONS)}")
    ap.add_argument("--workers", type=int, default=8, help="pytest-xdist workers for the pytest sections (0: none)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="wall-clock budget; later sections are skipped past it")
    ap.add_argument("--repeat", type=int, default=3, help="timed MNIST epochs per device (the median is reported)")
    ap.add_argument("--overwrite", action="store_true", help=f"replace an existing DIR/{REPORT}")
    args = ap.parse_args(argv)

    import reference

    cuda_ids = [v for v, var in reference.VARIANTS.items() if "cuda" in var.devices]
    if args.out is None:
        ap.error("no output folder: pass --out DIR or set OUT")
    unknown = [s for s in args.skip if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}. Valid choices: {', '.join(SECTIONS)}")
    bad = [v for v in args.variants or [] if v not in cuda_ids]
    if bad:
        ap.error(f"variant(s) {', '.join(bad)} cannot run on CUDA. Valid choices: {', '.join(cuda_ids)}")
    if args.steps is not None and args.steps < 1:
        ap.error(f"--steps must be >= 1, got {args.steps}")
    if args.workers < 0 or args.budget_s <= 0 or args.repeat < 1:
        ap.error("--workers must be >= 0, --budget-s > 0 and --repeat >= 1")
    args.variants = args.variants or cuda_ids
    args.out = Path(args.out)
    return args


def cuda_unavailable_reason() -> str | None:
    from reference.harness.planning import cuda_unavailable_reason as reason  # one wording for pytest, check and this

    return reason()


def facts(device: str) -> dict[str, Any]:
    """What ran: torch, the host, the GPU and the environment variables that change its float32 math.
    (reference/harness/environment.py of issue 16 records the same into each Trajectory, where merged.)"""
    import numpy as np
    import torch

    out: dict[str, Any] = {
        "torch": torch.__version__, "torch_cuda": torch.version.cuda, "numpy": np.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_count": os.cpu_count(),
        "env": {k: os.environ[k] for k in TF32_ENV if k in os.environ},
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                   gpu_memory_gib=round(props.total_memory / 2**30, 1), gpu_count=torch.cuda.device_count(),
                   cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            out["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
        except (OSError, subprocess.TimeoutExpired):
            out["driver"] = None
    return out


# --- pytest sections ---------------------------------------------------------------------------------

def run_pytest(args: list[str], out: Path, name: str, timeout: float, env_extra: dict[str, str] | None = None,
               cwd: Path = ROOT) -> dict[str, Any]:
    """pytest ARGS in a subprocess; log to OUT/NAME.log, JUnit XML parsed into counts and failures."""
    log, xml = out / f"{name}.log", out / f"{name}.xml"
    cmd = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", f"--junitxml={xml}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")]), **(env_extra or {})}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=max(timeout, 1))
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, text = None, f"{exc.stdout or ''}{exc.stderr or ''}\n[gpu_check: killed after {timeout:.0f} s]"
        text = text if isinstance(text, str) else text.decode(errors="replace")
    log.write_text(text)
    result: dict[str, Any] = {"command": " ".join(["pytest", *args]), "returncode": rc,
                              "wall_s": round(time.perf_counter() - start, 1), "log": log.name,
                              "last_line": (text.strip().splitlines() or [""])[-1][:300]}
    result.update(junit_summary(xml))
    return result


def junit_summary(xml: Path) -> dict[str, Any]:
    if not xml.exists():
        return {"tests": 0, "passed": 0, "failed": [], "skipped": 0}
    root = ET.parse(xml).getroot()
    cases = list(root.iter("testcase"))
    failed, skipped = [], 0
    for case in cases:
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            message = (problem.get("message") or problem.text or "").strip()
            failed.append({"test": f"{case.get('classname')}::{case.get('name')}", "message": message[:600]})
        elif case.find("skipped") is not None:
            skipped += 1
    return {"tests": len(cases), "passed": len(cases) - len(failed) - skipped, "failed": failed, "skipped": skipped}


def _workers(n: int) -> list[str]:
    return ["-n", str(n)] if n > 0 else []


# --- measuring sections ------------------------------------------------------------------------------

class Runs:
    """reference.run memoised: the CPU runs serve the devices and the tf32_on sections."""

    def __init__(self, steps_cap: int | None):
        self.cache: dict[tuple, Any] = {}
        self.steps_cap = steps_cap

    def steps(self, variant_id: str, dtype: str) -> int:
        from reference.judge.goldens import GoldenKey

        n = GoldenKey(variant_id, dtype, 0).steps
        return n if self.steps_cap is None else min(n, self.steps_cap)

    def __call__(self, variant_id: str, dtype: str, device: str, tag: str = "") -> Any:
        import reference

        key = (variant_id, dtype, device, tag)
        if key not in self.cache:
            self.cache[key] = reference.run(variant_id, dtype=dtype, device=device, threads=1,
                                            steps=self.steps(variant_id, dtype))
        return self.cache[key]


def _first_beyond(rel, threshold: float) -> int | None:
    import numpy as np

    idx = np.flatnonzero(~(rel <= threshold))
    return int(idx[0]) if idx.size else None


def _sig(x: float) -> float:
    return float(f"{x:.3g}") if math.isfinite(x) else x


def compare_runs(variant_id: str, dtype: str, now, cpu, cpu64) -> dict[str, Any]:
    """now (a device run) against cpu (the CPU run from the same start), under the policy."""
    import numpy as np

    from reference.judge.checks import relative_error, shadow_distance
    from reference.judge.rules import rule_for
    from reference.judge.verdict import judge

    a, g = np.asarray(now.losses), np.asarray(cpu.losses)
    rel = np.where(np.isnan(relative_error(a, g)), np.inf, relative_error(a, g))
    # the early window: the steps the CPU row holds to per-step bands (its horizon)
    window = min(rule_for(variant_id, dtype, "cpu").horizon, len(a)) or 1
    early = min(window, 50)
    out: dict[str, Any] = {
        "variant": variant_id, "dtype": dtype, "steps": len(a), "window": window,
        "max_rel_in_window": _sig(float(rel[:window].max())), "at_step": int(np.argmax(rel[:window])),
        "first_step_beyond": {f"{t:g}": _first_beyond(rel, t) for t in THRESHOLDS[dtype]},
        "max_rel_whole_run": _sig(float(rel.max())),
        f"rel_steps_0_{early - 1}": [_sig(float(x)) for x in rel[:early]],
        "tf32_read_back": now.tf32, "float32_matmul_error": now.float32_matmul_error,
        "wall_s": {"cpu": round(cpu.wall_time_s, 3), "device": round(now.wall_time_s, 3)},
    }
    g64 = np.asarray(cpu64.losses)
    if dtype != "float64":
        run_d, cpu_d = shadow_distance(a, g64), shadow_distance(g, g64)
        out["distance_from_float64"] = {"run": _sig(run_d), "cpu_float32": _sig(cpu_d),
                                        "ratio": _sig(run_d / cpu_d) if cpu_d > 0 else None}
    for rows in ("cuda", "cpu"):
        v = judge(variant_id, dtype, a, g, device=rows, reference64=None if dtype == "float64" else g64)
        out[f"verdict_{rows}_rows"] = v.summary().replace(f" {rows} ", f" {now.device} vs cpu ({rows} rows) ", 1)
        out[f"caught_by_{rows}_rows"] = not v.ok
    return out


def section_devices(args, runs: Runs, device: str) -> dict[str, Any]:
    import reference

    rows = []
    for vid in args.variants:
        for dtype in reference.VARIANTS[vid].dtypes:
            rows.append(compare_runs(vid, dtype, runs(vid, dtype, device), runs(vid, dtype, "cpu"),
                                     runs(vid, "float64", "cpu")))
    return {"rows": rows}


def section_tf32_on(args, runs: Runs, device: str) -> dict[str, Any]:
    import reference
    from reference.harness import precision, running

    rows = []
    original = running.ieee_float32
    # on a GPU: TF32 really on; in a dry run on the CPU: TF32 rounding emulated
    running.ieee_float32 = precision.tf32_matmul
    try:
        for vid in args.variants:
            if "float32" not in reference.VARIANTS[vid].dtypes:
                continue
            if device == "cpu":
                with precision.emulated_tf32():
                    now = runs(vid, "float32", device, tag="tf32")
            else:
                now = runs(vid, "float32", device, tag="tf32")
            row = compare_runs(vid, "float32", now, runs(vid, "float32", "cpu"), runs(vid, "float64", "cpu"))
            try:
                running.check_full_precision(now)
                row["check_full_precision"] = "passed"
            except AssertionError as exc:
                row["check_full_precision"] = f"failed: {exc}"
            rows.append(row)
    finally:
        running.ieee_float32 = original
    return {"how": "TF32 matmul on (reference.harness.precision.tf32_matmul)" if device != "cpu"
            else "dry run: TF32 rounding emulated on the CPU (reference.harness.precision.emulated_tf32)", "rows": rows}


def section_mnist_speed(args, device: str) -> dict[str, Any]:
    import reference
    from reference.mnist import batches_per_epoch, resolve_root

    vid = "mnist.quickstart"
    root = resolve_root(None)
    steps = batches_per_epoch(root, reference.VARIANTS[vid].hyperparameters["batch_size"])
    if args.steps is not None:
        steps = min(steps, args.steps)
    times: dict[str, Any] = {}
    repeat = args.repeat
    for dev in dict.fromkeys(["cpu", device]):
        reference.run(vid, device=dev, steps=min(3, steps), threads=1)  # warm-up (imports, CUDA context)
        walls = [reference.run(vid, device=dev, steps=steps, threads=1).wall_time_s for _ in range(repeat)]
        times[dev] = {"median_s": round(statistics.median(walls), 4), "min_s": round(min(walls), 4),
                      "ms_per_batch": round(1e3 * statistics.median(walls) / steps, 3)}
    out = {"variant": vid, "data": "embedded digits" if not root else str(root), "batches": steps,
           "cpu_threads": 1, "repeat": repeat, "times": times}
    if device != "cpu":
        out["cpu_over_cuda"] = round(times["cpu"]["median_s"] / times[device]["median_s"], 2)
    return out


# --- summary -------------------------------------------------------------------------------------

def _round_up(x: float) -> float:
    if x <= 0:
        return 0.0
    e = math.floor(math.log10(x))
    return math.ceil(x / 10**e) * 10**e


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    s = report["sections"]
    out: dict[str, Any] = {}
    for name in PYTEST_SECTIONS:
        sec = s.get(name, {})
        if "returncode" in sec:
            out[name] = f"returncode {sec['returncode']}: {sec['passed']} passed, {len(sec['failed'])} failed, {sec['skipped']} skipped"
    if "rows" in s.get("devices", {}):
        suggested = {}
        for dtype in ("float32", "float64"):
            rows = [r for r in s["devices"]["rows"] if r["dtype"] == dtype]
            if not rows:
                continue
            worst = max(rows, key=lambda r: r["max_rel_in_window"])
            rtol = _round_up(worst["max_rel_in_window"] * MARGIN[dtype])
            suggested[f"{dtype}_cuda"] = {
                "worst_measured": worst["max_rel_in_window"], "by": worst["variant"],
                "rtol": rtol, "margin": MARGIN[dtype],
                "failing_under_current_cuda_rows": [r["variant"] for r in rows if r["caught_by_cuda_rows"]],
                "failing_under_cpu_rows": [r["variant"] for r in rows if r["caught_by_cpu_rows"]],
            }
        out["suggested_policy_rows"] = suggested
    if "rows" in s.get("tf32_on", {}):
        rows = s["tf32_on"]["rows"]
        out["tf32_on"] = {
            "caught_by_cuda_rows": [r["variant"] for r in rows if r["caught_by_cuda_rows"]],
            "caught_by_cpu_rows": [r["variant"] for r in rows if r["caught_by_cpu_rows"]],
            "caught_by_check_full_precision": [r["variant"] for r in rows if r["check_full_precision"] != "passed"],
            "first_step_beyond_2e-05": {r["variant"]: r["first_step_beyond"]["2e-05"] for r in rows},
        }
    gate_ok = s.get("pytest_cuda", {}).get("returncode") == 0
    caught = s.get("pytest_cuda_tf32_on", {}).get("returncode") not in (None, 0)
    out["gate_green_with_tf32_off"] = gate_ok if "returncode" in s.get("pytest_cuda", {}) else None
    out["gate_red_with_tf32_on"] = caught if "returncode" in s.get("pytest_cuda_tf32_on", {}) else None
    return out


def write_report(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = cuda_unavailable_reason()
    if reason is not None and not args.dry_run:
        print(f"gpu_check: {reason}; nothing was run (--dry-run checks this script on the CPU)", file=sys.stderr)
        return 3
    report_path = args.out / REPORT
    if report_path.exists() and not args.overwrite:
        print(f"gpu_check: {report_path} exists; pass --overwrite to replace it, or another --out", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.dry_run else "cuda"
    start = time.perf_counter()
    report: dict[str, Any] = {
        "schema": 1, "dry_run": args.dry_run, "device": device, "variants": args.variants,
        "steps_cap": args.steps, "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": facts(device), "sections": {},
    }
    runs = Runs(args.steps)
    left = lambda: args.budget_s - (time.perf_counter() - start)  # noqa: E731
    pytest_base = ["-m", "cuda", "--require-cuda", *_workers(args.workers), "-q", "-rfE"]
    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        "pytest_cuda": lambda: run_pytest(pytest_base + ["--artifacts-dir", str(args.out / "artifacts")],
                                          args.out, "pytest_cuda", min(left(), 240)),
        "pytest_tf32_switch": lambda: run_pytest(["tests/test_tf32.py", "-q"], args.out, "pytest_tf32_switch",
                                                 min(left(), 120)),
        "devices": lambda: section_devices(args, runs, device),
        "tf32_on": lambda: section_tf32_on(args, runs, device),
        "pytest_cuda_tf32_on": lambda: run_pytest(
            pytest_base + ["-p", "tf32_on_plugin", "--artifacts-dir", str(args.out / "artifacts-tf32-on")],
            args.out, "pytest_cuda_tf32_on", min(left(), 240)),
        "mnist_speed": lambda: section_mnist_speed(args, device),
    }
    for name in SECTIONS:
        if name in args.skip:
            report["sections"][name] = {"skipped": "--skip"}
        elif name in PYTEST_SECTIONS and args.dry_run:
            report["sections"][name] = {"skipped": "dry run"}
        elif left() < 20:
            report["sections"][name] = {"skipped": f"time budget ({args.budget_s:g} s) spent"}
        else:
            t0 = time.perf_counter()
            try:
                result = jobs[name]()
            except Exception as exc:  # record and go on: one broken section must not lose the rest
                result = {"error": f"{type(exc).__name__}: {exc}"}
            result["section_wall_s"] = round(time.perf_counter() - t0, 1)
            report["sections"][name] = result
        print(f"gpu_check: {name}: {_one_line(report['sections'][name])}", flush=True)
        report["summary"] = summarise(report)
        report["wall_s"] = round(time.perf_counter() - start, 1)
        write_report(report_path, report)
    print(f"gpu_check: wrote {report_path}")
    summary = report["summary"]
    if args.dry_run:
        return 0 if not any("error" in s for s in report["sections"].values()) else 1
    return 0 if summary["gate_green_with_tf32_off"] and summary["gate_red_with_tf32_on"] else 1


def _one_line(section: dict[str, Any]) -> str:
    if "skipped" in section:
        return f"skipped ({section['skipped']})"
    if "error" in section:
        return f"error: {section['error']}"
    if "returncode" in section:
        return f"returncode {section['returncode']}, {section['passed']} passed, {len(section['failed'])} failed ({section['wall_s']} s)"
    if "rows" in section:
        return f"{len(section['rows'])} comparisons ({section['section_wall_s']} s)"
    return f"done ({section.get('section_wall_s')} s)"


if __name__ == "__main__":
    raise SystemExit(main())
