"""python -m reference.calibration {calibrate,stability} ...: re-derive the policy's tolerances from the
benign ensemble, or run the gate under a benign configuration (docs/policy.md, docs/recipes.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .derive import analyse
from .ensemble import BENIGN, __doc__ as ENSEMBLE_DOC, _all_variants, real_changes, run_missing, worker
from ..harness.planning import parse_seeds
from . import stability


def calibrate(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reference.calibration calibrate", description=ENSEMBLE_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tes-calibration"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", default="0-6", help="seeds to measure (default 0-6: every golden seed and 5 more)")
    parser.add_argument("--variants", nargs="*", default=None)
    parser.add_argument("--configs", nargs="*", default=None, help="benign configurations (default: all)")
    parser.add_argument("--no-real", action="store_true", help="skip the real changes")
    parser.add_argument("--write", action="store_true",
                        help="write specs/golden_tolerances.toml and specs/calibration_report.md")
    args = parser.parse_args(argv)
    every = _all_variants()
    unknown = sorted(set(args.variants or ()) - set(every))
    if unknown:
        parser.error(f"not a golden variant: {', '.join(unknown)}. Valid choices: {', '.join(every)}")
    variants = args.variants or every
    unknown = sorted(set(args.configs or ()) - set(BENIGN))
    if unknown:
        parser.error(f"not a benign configuration: {', '.join(unknown)}. Valid choices: {', '.join(BENIGN)}")
    if args.write and args.configs and set(args.configs) != set(BENIGN):
        # rows derived from fewer configurations are narrower than the CPUs they must pass: false alarms
        parser.error("--write derives rows from every benign configuration; drop --configs to write")
    seeds = parse_seeds(args.seeds)
    benign_names = args.configs or list(BENIGN)
    configs = benign_names + ([] if args.no_real else real_changes())
    run_missing(args.workdir, configs, seeds, variants, args.jobs)

    analyse(args.workdir, benign_names, [] if args.no_real else real_changes(), seeds, variants, write=args.write,
            partial=set(variants) != set(every))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ("calibrate", "stability", "worker")
    if not argv or argv[0] not in commands:
        print(f"usage: python -m reference.calibration {{{','.join(commands[:2])}}} ...", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "stability":
        return stability.main(rest)
    if command == "worker":  # one process of the ensemble: CONFIG SEED OUT VARIANT...
        config, seed, out, *variants = rest
        worker(config, int(seed), variants, Path(out))
        return 0
    calibrate(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
