"""The calibration's runs: every golden variant and dtype, on the golden seeds plus more, under each
benign configuration (specs/benign_configurations.toml) and under real changes, each (configuration,
seed) one process whose result is cached under --workdir/runs/.

    python -m reference.calibration calibrate [--workdir DIR] [--jobs 2] [--seeds 0-6] [--write]

1. Runs every golden variant and dtype under each *benign* configuration (thread counts, every CPU
   capability ATen can be forced to, MKL's instruction-set caps and reproducibility modes, oneDNN's
   ISA cap, OpenBLAS core types for NumPy), and under *real* changes (lr x (1 + d), Adam eps x (1 + d),
   every injection of reference/injections.py) in the canonical configuration (1 thread, no overrides).
2. Derives the policy rows from the benign ensemble only (reference/calibration/derive.py; the rules
   are in specs/golden_policy.toml): per-step bands, the horizon, the tail statistic, the float32
   shadow allowance, final parameters.
3. Judges every run with those rows (reference/judge, the code the gate runs): every benign run must
   pass; prints, per variant and dtype, the largest benign deviation, the smallest real deviation,
   the tolerance, the margins, and the minimum detectable change of lr (and Adam's eps).
   --write writes specs/golden_tolerances.toml and specs/calibration_report.md.

Results are cached: delete --workdir (or one configuration's folder) to re-measure.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..catalogue import load_variants
from ..injections import INJECTIONS, with_default
from .configurations import benign, numpy_only

# name -> (environment of its process, torch/BLAS threads). "canonical" is what goldens record.
BENIGN = benign()
# Configurations that only move NumPy's BLAS run only the NumPy variants.
NUMPY_ONLY = numpy_only()

# Real changes: run in the canonical configuration. lr and eps scale linearly in the early steps,
# which is what the minimum-detectable-change estimate uses (and then verifies at its goal).
REAL_LR = {"lr+1e-4": 1e-4, "lr+1e-6": 1e-6}
REAL_EPS = {"adam-eps+1e-2": 1e-2}


def _all_variants() -> list[str]:
    return list(load_variants())


# Which variants each injection can change: those whose code calls what it patches (grep the
# variant files: Adam, SGD, RMSprop, MSELoss, clamp, nn.Linear, a matrix product). The others run
# exactly the canonical code, so running them would only repeat the canonical run.
_MLP_TORCH = ["mlp.tensor", "mlp.autograd", "mlp.variable", "mlp.custom_function"]
_NN = ["mlp.nn", "mlp.optim", "mlp.module", "mlp.module_adam", "mlp.dynamic", "poly.nn", "poly.optim", "mnist.quickstart",
       "mnist.quickstart_fixed"]
INJECTION_VARIANTS = {
    "adam": ["mlp.optim", "mlp.module_adam"],
    "sgd": ["mlp.module", "mlp.dynamic", "poly.module", "poly.dynamic", "mnist.quickstart", "mnist.quickstart_fixed"],
    "rmsprop": ["poly.optim"],
    "mse": ["mlp.nn", "mlp.optim", "mlp.module", "mlp.module_adam", "mlp.dynamic", "poly.nn", "poly.optim", "poly.module", "poly.dynamic"],
    "clamp": [*_MLP_TORCH, "mlp.module", "mlp.module_adam", "mlp.dynamic", "mnist.quickstart", "mnist.quickstart_fixed"],
    "init": _NN,
    "matmul": [*_MLP_TORCH, *_NN, "poly.custom_function"],
}


def injection_variants(name: str) -> list[str]:
    first = re.match(r"[a-z]+", name.removeprefix("inject:").lower()).group()
    return INJECTION_VARIANTS[{"float": "matmul", "linear": "init"}.get(first, first)]


def real_changes() -> list[str]:
    return [*REAL_LR, *REAL_EPS, *(f"inject:{name}" for name in INJECTIONS)]


# ---- worker: one process, one configuration, one seed ----------------------------------------------

def worker(config: str, seed: int, variants: list[str], out: Path) -> None:
    import contextlib

    import torch

    from ..catalogue import load_variants
    from ..harness.running import run
    from ..harness.trajectory import params_record
    from ..judge.rules import golden_steps

    threads = BENIGN.get(config, ({}, 1))[1]
    inject = contextlib.nullcontext()
    if config.startswith("inject:"):
        inject = INJECTIONS[config.removeprefix("inject:")]()
    elif config in REAL_EPS:
        inject = with_default(torch.optim.Adam, eps=1e-8 * (1 + REAL_EPS[config]))
    results = {}
    with inject:
        for vid in variants:
            variant = load_variants()[vid]
            overrides = {}
            if config in REAL_LR:
                overrides["lr"] = variant.hyperparameters["lr"] * (1 + REAL_LR[config])
            for dtype in variant.dtypes:
                steps = golden_steps(vid, variant.steps)
                t = run(vid, seed=seed, dtype=dtype, steps=steps, threads=threads, **overrides)
                results[f"{vid}/{dtype}"] = {
                    "losses": [x if math.isfinite(x) else repr(x) for x in t.losses],
                    "params": params_record(t.params),
                    "wall": t.wall_time_s,
                }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results))
    tmp.replace(out)


def variants_for(config: str, every: list[str]) -> list[str]:
    if config in NUMPY_ONLY:
        return [v for v in every if load_variants()[v].uses_numpy]
    if config in REAL_EPS:
        return [v for v in every if v in ("mlp.optim", "mlp.module_adam")]
    if config.startswith("inject:"):
        return [v for v in every if v in injection_variants(config)]
    return every


# MNIST in its own files: its data and loader change independently of the mlp/poly programs
GROUPS = {"mnist": lambda v: v.startswith("mnist."), "mlp-poly": lambda v: not v.startswith("mnist.")}


def result_path(workdir: Path, config: str, seed: int, group: str) -> Path:
    return workdir / "runs" / config.replace(":", "_").replace(" ", "_") / f"{group}-seed{seed}.json"


def run_tasks(tasks: list, jobs: int, started: float) -> None:
    def launch(task) -> None:
        config, seed, ids, out = task
        env = {**os.environ, **BENIGN.get(config, ({}, 1))[0]}
        cmd = [sys.executable, "-m", "reference.calibration", "worker", config, str(seed), str(out), *ids]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{config} seed {seed} failed:\n{proc.stderr[-3000:]}")
        print(f"  {config:<44} seed {seed} {len(ids):>2} variants  done at {time.time() - started:5.0f} s", flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(launch, tasks))


def differing_variants(workdir: Path, config: str, seed: int) -> set[str]:
    """Variants whose run under `config` is not bitwise the canonical run (same seed)."""
    base, other = load(workdir, "canonical", seed), load(workdir, config, seed)
    return {key.split("/")[0] for key, rec in other.items()
            if key in base and (not np.array_equal(rec["losses"], base[key]["losses"])
                                or rec["params"] != base[key]["params"])}


def seeds_for(variant: str, seeds: list[int]) -> list[int]:
    """The golden seeds plus five more: seeds[:6], and one more for the random-depth variants."""
    return seeds if variant.endswith(".dynamic") else seeds[:6]


# Seeds beyond the first: the configurations that moved the runs most on the first seed explore
# the seed axis (all of them on every seed would cost hours on 2 cores); the real changes that the
# minimum detectable change rests on run on every seed, the others on the golden seeds.
EXTRA_SEED_CONFIGS = 3
# ... and always the configuration that changes the random draws themselves (ATen's default
# kernels draw other float32 ulps): the largest kind of benign difference, on every seed
EVERY_SEED_BENIGN = {"cap-default"}
EVERY_SEED_REAL = {"lr+1e-6", *REAL_EPS}


# Over 60 lines: the two phases share tasks_for and the files in flight; which configurations earn
# more seeds is one decision, read top to bottom.
def run_missing(workdir: Path, configs: list[str], seeds: list[int], variants: list[str], jobs: int,
                *, running: list[Path] = ()) -> None:
    """Phase 1: every configuration on the first seed. Phase 2: the other seeds, for the benign
    configurations (and variants) that moved the runs most on the first seed: one that leaves every
    variant bitwise equal runs the same kernels here, and more seeds would only repeat the
    canonical run. `running`: result files another process is still writing (waited for)."""
    started = time.time()

    def tasks_for(config: str, seed_list: list[int], only: set[str] | None) -> list:
        tasks = []
        for group, member in GROUPS.items():
            for seed in seed_list:
                ids = [v for v in variants_for(config, variants) if member(v) and seed in seeds_for(v, seeds)
                       and (only is None or v in only)]
                out = result_path(workdir, config, seed, group)
                if out in running:
                    continue
                if out.exists():  # a variant added since: its own file beside the others
                    have = {key.split("/")[0] for key in load(workdir, config, seed)}
                    ids = [v for v in ids if v not in have]
                    out = result_path(workdir, config, seed, group + "-" + "+".join(ids))
                if ids and not out.exists():
                    tasks.append((config, seed, ids, out))
        return tasks

    first = seeds[0]
    phase1 = [t for c in ["canonical", *configs] for t in tasks_for(c, [first], None)]
    phase1 = list({t[3]: t for t in phase1}.values())
    if phase1:
        print(f"calibrate: phase 1, {len(phase1)} processes ({jobs} at a time)", flush=True)
        run_tasks(phase1, jobs, started)
    while not all(Path(p).exists() for p in running):
        time.sleep(5)
    phase2 = tasks_for("canonical", seeds[1:], None)
    moved_most: list[tuple[float, str, str]] = []  # (deviation, variant, configuration)
    seen: dict[str, str] = {}  # digest of a configuration's first-seed results -> the configuration
    for config in configs:
        if config == "canonical":
            continue
        if config in EVERY_SEED_REAL:
            phase2 += tasks_for(config, seeds[1:], None)
            continue
        if config not in BENIGN:  # the other real changes: on the golden seeds, as the gate judges them
            from ..judge.rules import golden_seeds

            for s in sorted({s for v in variants for s in golden_seeds(v)} - {first}):
                phase2 += tasks_for(config, [s], {v for v in variants if s in golden_seeds(v)})
            continue
        moved = differing_variants(workdir, config, first)
        if not moved:
            continue
        # two configurations with bitwise the same results ran the same kernels: one is enough
        digest = json.dumps({k: (list(map(float, v["losses"])), v["params"])
                             for k, v in sorted(load(workdir, config, first).items())})
        if digest in seen:
            print(f"  {config}: bitwise the same as {seen[digest]} on seed {first}; not re-run", flush=True)
            continue
        seen[digest] = config
        for vid in moved:
            moved_most.append((deviation(workdir, config, first, vid), vid, config))
    # per variant, the configurations that moved it most on the first seed
    chosen: dict[str, set[str]] = {}
    for vid in variants:
        ranked = sorted(((size, config) for size, v, config in moved_most if v == vid), reverse=True)
        for size, config in ranked[:EXTRA_SEED_CONFIGS]:
            chosen.setdefault(config, set()).add(vid)
        for size, config in ranked:
            if config in EVERY_SEED_BENIGN:
                chosen.setdefault(config, set()).add(vid)
    for config, vids in chosen.items():
        print(f"  {config}: on every seed for {', '.join(sorted(vids))}", flush=True)
        phase2 += tasks_for(config, seeds[1:], vids)
    if phase2:
        print(f"calibrate: phase 2, {len(phase2)} processes ({jobs} at a time)", flush=True)
        run_tasks(phase2, jobs, started)


def deviation(workdir: Path, config: str, seed: int, vid: str) -> float:
    """How far `config` moved `vid` on `seed`: the largest relative loss deviation from the canonical
    run over both dtypes."""
    base, other = load(workdir, "canonical", seed), load(workdir, config, seed)
    worst = 0.0
    for key, rec in other.items():
        if key.split("/")[0] == vid and key in base:
            b = base[key]["losses"]
            err = np.abs(rec["losses"] - b) / np.maximum(np.abs(b), 1e-300)
            worst = max(worst, float(np.nanmax(err)))
    return worst


def load(workdir: Path, config: str, seed: int) -> dict:
    data = {}
    folder = result_path(workdir, config, seed, "x").parent
    for path in sorted(folder.glob(f"*-seed{seed}.json")):
        data.update(json.loads(path.read_text()))
    for rec in data.values():
        rec["losses"] = np.array([float(x) for x in rec["losses"]], dtype=np.float64)
    return data
