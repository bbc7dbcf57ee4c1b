"""Run a command (by default the gate) under one benign CPU configuration of the calibration.

    python benchmarks/stability.py [--config NAME | --all | --list] [-- COMMAND ...]

The golden policy is calibrated so that no benign configuration (thread count, CPU kernel path,
BLAS instruction set) turns the gate red (benchmarks/calibrate.py). This keeps that true in our own
CI: each run picks the configuration of the day from a rotation (or the one named), prints it, and
runs the command with its environment, so a tolerance change that brings back a false alarm fails
here and not on a user's machine. The thread count is passed as TES_THREADS, which the test
plugin applies to every run. Exit status: the command's (with --all, the first non-zero one).
"""
from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from calibrate import BENIGN, NUMPY_ONLY  # noqa: E402

# canonical is what the goldens record; the NumPy-only ones do not move torch at all
ROTATION = [name for name in BENIGN if name != "canonical" and name not in NUMPY_ONLY]
def default_command(threads: int) -> list[str]:
    """The gate; one xdist worker when each run has threads of its own (two workers of 2-4 threads
    each on 2 cores stall: benchmarks/bench_gate.py)."""
    return [sys.executable, "-m", "pytest", "-n", "auto" if threads == 1 else "1", "-p", "no:cacheprovider"]


def config_of_the_day(today: datetime.date | None = None) -> str:
    today = today or datetime.date.today()
    return ROTATION[today.toordinal() % len(ROTATION)]


def environment(name: str) -> dict[str, str]:
    env_vars, threads = BENIGN[name]
    return {**os.environ, **env_vars, "TES_THREADS": str(threads)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--config", choices=sorted(BENIGN), help="one configuration (default: the day's)")
    choice.add_argument("--all", action="store_true", help="every configuration of the rotation in turn")
    choice.add_argument("--list", action="store_true", help="print the rotation and exit")
    parser.add_argument("command", nargs="*", help="the command to run (default: the gate, pytest -n auto)")
    args = parser.parse_args(argv)
    if args.list:
        for name in ROTATION:
            env_vars, threads = BENIGN[name]
            print(f"{name:<26} threads={threads} {' '.join(f'{k}={v}' for k, v in env_vars.items())}")
        return 0
    names = ROTATION if args.all else [args.config or config_of_the_day()]
    status = 0
    for name in names:
        env_vars, threads = BENIGN[name]
        shown = " ".join([f"TES_THREADS={threads}", *(f"{k}={v}" for k, v in env_vars.items())])
        print(f"stability: benign configuration {name!r}: {shown}", flush=True)
        code = subprocess.run(args.command or default_command(threads), env=environment(name), cwd=ROOT).returncode
        print(f"stability: {name!r} exit status {code}", flush=True)
        status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main())
