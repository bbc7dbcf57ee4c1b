"""What a bisect runs inside each environment (`python -m reference.bisect.worker ...`, this package on
PYTHONPATH): the runs of the targets, and the op trace of one step.

    record --out FILE --threads N VARIANT:DTYPE ...
    locate VARIANT DTYPE STEP --out FILE --threads N [--against TRACE]   (prints the op line against TRACE)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference.bisect.worker")
    sub = parser.add_subparsers(dest="command", required=True)
    record = sub.add_parser("record")
    record.add_argument("--out", required=True)
    record.add_argument("--threads", type=int, default=1)
    record.add_argument("targets", nargs="+")
    locate = sub.add_parser("locate")
    locate.add_argument("variant")
    locate.add_argument("dtype")
    locate.add_argument("step", type=int)
    locate.add_argument("--out", required=True)
    locate.add_argument("--threads", type=int, default=1)
    locate.add_argument("--against", default=None)
    args = parser.parse_args(argv)

    from ..harness.running import run
    from ..harness.trajectory import save_trajectories
    from ..trace import compare_traces, dumps, loads

    if args.command == "record":
        runs = [run(variant, dtype=dtype, threads=args.threads, record_state=True)
                for variant, dtype in (t.split(":") for t in args.targets)]
        save_trajectories(Path(args.out), runs)
        return 0
    from ..judge.locate import traced_run

    now = traced_run(args.variant, args.step, dtype=args.dtype, threads=args.threads)
    Path(args.out).write_text(dumps(now))
    if args.against is not None:
        print(compare_traces(loads(Path(args.against).read_text()), now, args.dtype).line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
