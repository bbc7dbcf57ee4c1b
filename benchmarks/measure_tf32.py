"""What TF32 does to each variant's float32 trajectory, emulated on the CPU: the evidence for the
CUDA float32 row of specs/golden_policy.toml before a GPU has measured it (See Note [TF32] in
reference/harness/precision.py).

    python benchmarks/measure_tf32.py [--variants mlp.nn ...] [--json out.json]

Runs every variant that can run on CUDA (not the *.numpy ones) in float32 from the golden start,
at the golden length and one thread, with every float32 matmul's operands rounded to TF32's 10-bit
mantissa, forward and backward (reference.harness.precision.emulated_tf32), and compares the losses with
the float32 golden (IEEE float32 on the CPU). Prints, per variant: the largest relative difference
over steps 0..49, the first step beyond 2e-5 (the CPU window tolerance) and beyond 1e-4 (the
unmeasured CUDA guess), and the policy's verdict with the CPU rows and with the CUDA rows.
For scale: benign float32 drift on the CPU stays <= 2.2e-6 over steps 0..50 (DESIGN.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reference  # noqa: E402
from reference.judge import goldens as golden  # noqa: E402
from reference.judge.checks import relative_error  # noqa: E402
from reference.judge.goldens import GoldenKey  # noqa: E402
from reference.judge.verdict import judge  # noqa: E402
from reference.harness.precision import emulated_tf32  # noqa: E402

THRESHOLDS = (2e-5, 1e-4)
EARLY = 50


def first_step_beyond(rel: np.ndarray, threshold: float) -> int | None:
    idx = np.flatnonzero(rel > threshold)
    return int(idx[0]) if idx.size else None


def measure(variant_id: str, seed: int = 0) -> dict:
    key = GoldenKey(variant_id, "float32", seed)
    gold = np.asarray(golden.read(key)["losses"])
    gold64 = golden.read(GoldenKey(variant_id, "float64", seed))["losses"]
    with emulated_tf32():
        run = reference.run(variant_id, seed=seed, dtype="float32", steps=key.steps, threads=1)
    now = np.asarray(run.losses)
    rel = relative_error(now, gold)
    out = {
        "variant": variant_id,
        "steps": key.steps,
        "max_rel_steps_0_49": float(rel[:EARLY].max()),
        "max_rel_step_0": float(rel[0]),
        **{f"first_step_beyond_{t:g}": first_step_beyond(rel, t) for t in THRESHOLDS},
        "max_rel_whole_run": float(rel.max()),
    }
    for device in ("cpu", "cuda"):
        v = judge(variant_id, "float32", now, gold, device=device, reference64=gold64)
        out[f"verdict_{device}_rows"] = v.summary()
        out[f"caught_by_{device}_rows"] = not v.ok
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="*", help="variant ids (default: every one that runs on CUDA)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    ids = args.variants or [v for v, var in reference.VARIANTS.items() if "cuda" in var.devices
                            and "float32" in var.dtypes]
    rows = []
    for vid in ids:
        r = measure(vid)
        rows.append(r)
        beyond = ", ".join(f"> {t:g} from step {r[f'first_step_beyond_{t:g}']}" for t in THRESHOLDS)
        print(f"{vid:22s} max rel 0..49 {r['max_rel_steps_0_49']:.2e} (step 0 {r['max_rel_step_0']:.1e}); {beyond}; "
              f"caught: cpu rows {r['caught_by_cpu_rows']}, cuda rows {r['caught_by_cuda_rows']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
