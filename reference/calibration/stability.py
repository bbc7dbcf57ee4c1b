"""Run a command (by default the gate) under one benign configuration of the calibration.

    python -m reference.calibration stability [--config NAME | --all | --list] [-- COMMAND ...]
    python benchmarks/stability.py ...          (the same)

The golden policy is calibrated so that no benign configuration (thread count, CPU kernel path,
BLAS instruction set) turns the gate red. CI keeps that true: each run picks the configuration of
the day from a rotation (or the one named), prints it, and runs the command with its environment,
so a tolerance change (or a test that reads the ambient environment) that brings back a false alarm
fails here and not on a user's machine. The thread count is passed as TES_THREADS, which the test
plugin applies to every run. Exit status: the command's (with --all, the first non-zero one).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .configurations import benign, config_of_the_day, environment, rotation


def default_command(threads: int) -> list[str]:
    """The gate; one xdist worker when each run has threads of its own (two workers of 2-4 threads
    each on 2 cores stall: docs/speed.md)."""
    return [sys.executable, "-m", "pytest", "-n", "auto" if threads == 1 else "1", "-p", "no:cacheprovider"]


def main(argv: list[str] | None = None, *, cwd: Path | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stability", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--config", choices=sorted(benign()), help="one configuration (default: the day's)")
    choice.add_argument("--all", action="store_true", help="every configuration of the rotation in turn")
    choice.add_argument("--list", action="store_true", help="print the rotation and exit")
    parser.add_argument("command", nargs="*", help="the command to run (default: the gate, pytest -n auto)")
    args = parser.parse_args(argv)
    if args.list:
        for name in rotation():
            env_vars, threads = benign()[name]
            print(f"{name:<26} threads={threads} {' '.join(f'{k}={v}' for k, v in env_vars.items())}")
        return 0
    names = rotation() if args.all else [args.config or config_of_the_day()]
    status = 0
    for name in names:
        env_vars, threads = benign()[name]
        shown = " ".join([f"TES_THREADS={threads}", *(f"{k}={v}" for k, v in env_vars.items())])
        print(f"stability: benign configuration {name!r}: {shown}", flush=True)
        code = subprocess.run(args.command or default_command(threads), env=environment(name), cwd=cwd).returncode
        print(f"stability: {name!r} exit status {code}", flush=True)
        status = status or code
    return status
