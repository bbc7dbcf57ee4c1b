"""Does `compare` say what the calibrated gate says, on real recordings? Prints a table.

    python benchmarks/verify_compare.py [--workdir DIR] [--jobs 2] [--configs NAME ...] [--injections NAME ...]

1. `python -m reference run --all --out` (float32-only: the tutorials' dtypes) and `--dtype both`,
   in the default configuration of this machine and under every benign configuration of
   specs/benign_configurations.toml (the rotation's; each in its own process); every configuration is
   compared with the default: exit 0 and no cell beyond the policy expected.
2. The same recordings under each injected change of reference/injections.py: compare exits 1,
   naming the variants the change reaches and the op (the first differing op line).
3. `check --out` in the default and each benign configuration, compared the same way; and each pair
   judged as the golden fixture judges (reference.judge.goldens.judge_golden with the default's run as
   the golden): the statuses must be the same as compare's.
Recordings are cached under --workdir (delete it to re-measure).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference.calibration.configurations import environment, rotation  # noqa: E402
from reference.injections import INJECTIONS  # noqa: E402

INJECTED_RUN = """
import sys
from reference.injections import INJECTIONS
from reference.cli import main
with INJECTIONS[sys.argv[1]]():
    sys.exit(main(sys.argv[2:]))
"""


def record(workdir: Path, name: str, env: dict[str, str], argv: list[str], injection: str | None = None) -> Path:
    out = workdir / f"{name}.json"
    if out.exists():
        return out
    cmd = [sys.executable, "-m", "reference", *argv] if injection is None else \
        [sys.executable, "-c", INJECTED_RUN, injection, *argv]
    cmd += ["--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{name}: {' '.join(cmd)} exited {proc.returncode}\n{proc.stderr[-2000:]}")
    return out


def compare(a: Path, b: Path) -> tuple[int, list[str]]:
    proc = subprocess.run([sys.executable, "-m", "reference", "compare", str(a), str(b), "--no-plots"],
                          cwd=ROOT, capture_output=True, text=True)
    return proc.returncode, proc.stdout.splitlines()


def diverged_and_ops(lines: list[str]) -> tuple[list[str], list[str]]:
    bad = [line[2:].split(":")[0] for line in lines if line.startswith("! ")]
    ops = [line.strip() for line in lines if line.strip().startswith("first differing op")]
    return bad, ops


def statuses_agree(default_check: Path, other_check: Path) -> tuple[int, int]:
    """(rows judged, rows whose compare status equals the golden fixture's judgement)."""
    from reference.harness.trajectory import read_trajectories
    from reference.judge.recordings import compare_matrix, load_source
    from reference.judge.verdict import judge

    base = {(t.variant, t.dtype, t.seed): (t, d) for t, d in read_trajectories(default_check)}
    other = {(t.variant, t.dtype, t.seed): (t, d) for t, d in read_trajectories(other_check)}
    matrix = compare_matrix([load_source(default_check, "default"), load_source(other_check, "other")], retrace=False)
    # a run of other than the variant's own step count is labelled "... seed 0 48 steps"
    by_label = {re.sub(r" \d+ steps$", "", row.label): row.cells[1].status for row in matrix.rows}
    judged = same = 0
    for key, (now, digest) in other.items():
        if key not in base:
            continue
        ref, ref_digest = base[key]
        ref64 = base.get((key[0], "float64", key[2]), (None,))[0]
        verdict = judge(key[0], key[1], now.losses, ref.losses, reference64=None if ref64 is None else ref64.losses,
                        now_params=now.params_record(), reference_params=ref.params_record(),
                        params_equal=digest == ref_digest)
        judged += 1
        same += verdict.status is by_label.get(f"{key[0]} {key[1]} seed {key[2]}")
    return judged, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tes-verify-compare"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--configs", nargs="*", default=None)
    parser.add_argument("--injections", nargs="*", default=None)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    configs = args.configs if args.configs is not None else rotation()
    injections = args.injections if args.injections is not None else list(INJECTIONS)
    base_env = {k: v for k, v in os.environ.items() if k != "TES_THREADS"}
    modes = {"float32": ["run", "--all", "--overwrite"], "both": ["run", "--all", "--dtype", "both", "--overwrite"]}

    tasks = []
    for mode, argv in modes.items():
        tasks.append((f"default-{mode}", base_env, argv + ["--threads", "1"], None))
        for c in configs:
            env = environment(c, base_env)
            tasks.append((f"{c}-{mode}", env, argv + ["--threads", env["TES_THREADS"]], None))
        for i in injections:
            tasks.append((f"inject{list(INJECTIONS).index(i)}-{mode}", base_env, argv + ["--threads", "1"], i))
    check_argv = ["check", "-q", "--overwrite"]
    for c in ["default", *configs]:
        env = base_env if c == "default" else environment(c, base_env)
        tasks.append((f"check-{c}", env, check_argv, None))

    def run(task):
        name, env, argv, injection = task
        if name.startswith("check-"):
            out = args.workdir / name
            if not (out / "check-cpu.json").exists():
                subprocess.run([sys.executable, "-m", "reference", *argv, "--out", str(out)], cwd=ROOT, env=env,
                               capture_output=True, text=True)
            return
        record(args.workdir, name, env, argv, injection)
        print(f"  recorded {name}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(run, tasks))

    print("\nbenign configurations against the default (exit 0, nothing beyond the policy expected):")
    for mode in modes:
        for c in configs:
            status, lines = compare(args.workdir / f"default-{mode}.json", args.workdir / f"{c}-{mode}.json")
            bad, _ = diverged_and_ops(lines)
            print(f"  {mode:8} {c:24} exit {status}  {lines[-1] if lines else ''}" + (f"  DIVERGED: {bad}" if bad else ""))
    print("\ninjected changes against the default (exit 1, the variants and the op named):")
    for mode in modes:
        for i in injections:
            status, lines = compare(args.workdir / f"default-{mode}.json",
                                    args.workdir / f"inject{list(INJECTIONS).index(i)}-{mode}.json")
            bad, ops = diverged_and_ops(lines)
            first_op = ops[0][:110] if ops else "no op named"
            print(f"  {mode:8} {i:42} exit {status}  diverged: {', '.join(sorted({b.split(' [')[0] for b in bad})) or '-'}")
            print(f"  {'':8} {'':42} {first_op}")
    print("\ncheck --out: compare of each configuration with the default, and the golden fixture's judgement of "
          "the same pairs:")
    for c in configs:
        a, b = args.workdir / "check-default" / "check-cpu.json", args.workdir / f"check-{c}" / "check-cpu.json"
        status, lines = compare(a, b)
        judged, same = statuses_agree(a, b)
        print(f"  {c:24} compare exit {status}; the same status through both doors: {same} of {judged}")


if __name__ == "__main__":
    main()
