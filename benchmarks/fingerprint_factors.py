"""Which settings move a run's bits, and does the environment fingerprint see each of them?

    python benchmarks/fingerprint_factors.py [--variants ID ...]

For the canonical configuration and each candidate setting (every benign configuration of
specs/benign_configurations.toml, and settings the calibration does not vary: NumPy's CPU features,
thread-count variables, allocator and hash settings), a fresh process runs the variants at one thread
(the configuration's own thread count where it has one) and reports their bits and its fingerprint
(reference.harness.environment.fingerprint). Printed per setting: whether it moved any bit, whether it
changed the fingerprint. A setting that moves bits without changing the fingerprint is a factor the
fingerprint misses: an expectation set would then fail a benign box loudly (add it to the record).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference.calibration.configurations import benign  # noqa: E402

EXTRA = {
    "npy-no-avx512": ({"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"}, 1),
    "omp-2": ({"OMP_NUM_THREADS": "2"}, 1),
    "mkl-threads-2": ({"MKL_NUM_THREADS": "2"}, 1),
    "openblas-threads-2": ({"OPENBLAS_NUM_THREADS": "2"}, 1),
    "pythonhashseed": ({"PYTHONHASHSEED": "123"}, 1),
    "malloc-arena": ({"MALLOC_ARENA_MAX": "1"}, 1),
    "omp-wait-passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, 1),
}
WORKER = """
import json, sys, hashlib
import reference
from reference.harness.environment import describe, fingerprint
threads = int(sys.argv[1])
bits = {}
for vid in sys.argv[2:]:
    for dtype in reference.VARIANTS[vid].dtypes:
        steps = 48 if vid.startswith("mnist") else 300 if vid == "poly.dynamic" else None
        t = reference.run(vid, dtype=dtype, threads=threads, steps=steps)
        bits[f"{vid}/{dtype}"] = hashlib.sha256(repr(t.losses).encode()).hexdigest()[:12]
print(json.dumps({"bits": bits, "fingerprint": fingerprint({**describe(), "threads": threads})}))
"""


def measure(env_vars: dict[str, str], threads: int, variants: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE",)} | env_vars
    proc = subprocess.run([sys.executable, "-c", WORKER, str(threads), *variants], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", default=["mlp.numpy", "mlp.tensor", "mlp.nn", "mlp.optim",
                                                          "poly.optim", "poly.nn", "mnist.quickstart"])
    args = parser.parse_args()
    settings = {**benign(), **EXTRA}
    canonical = measure(*settings.pop("canonical"), args.variants)
    print(f"{'setting':<24} {'moves bits':<11} {'fingerprint':<12} verdict")
    missed = 0
    for name, (env_vars, threads) in settings.items():
        got = measure(env_vars, threads, args.variants)
        moved = sorted(k for k in got["bits"] if got["bits"][k] != canonical["bits"][k])
        seen = got["fingerprint"] != canonical["fingerprint"]
        verdict = "MISSED FACTOR" if moved and not seen else "ok"
        missed += verdict != "ok"
        print(f"{name:<24} {('yes (' + str(len(moved)) + ')') if moved else 'no':<11} {'changes' if seen else 'same':<12} {verdict}")
    print(f"\n{missed} setting(s) move bits the fingerprint does not see")


if __name__ == "__main__":
    main()
