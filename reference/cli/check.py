"""`check`: the installed torch against the shipped goldens and properties, no checkout needed
(reference/judge/validation.py). Exit status: 0 something was checked and nothing diverged, 1
something diverged (a golden beyond the policy, a property, a fact changed since the newest verified
release), 2 bad input or nothing that could be checked (no GPU for --device cuda, a missing golden)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .. import facts, injections
from ..errors import UsageError
from ..harness.trajectory import save_trajectories
from ..judge.locate import record_departures
from ..judge import expectations
from ..judge.validation import Item, device_environment, perform, recording, repeats, select
from ..report import html, text
from .arguments import output_file, size_text

REQUIRE_CUDA_ENV = "TES_REQUIRE_CUDA"


def _progress(stream) -> Callable[[int, int, Item], None]:
    def show(done: int, total: int, item: Item) -> None:
        width = len(str(total))
        what = item.label if item.key is not None else f"{item.label} ({item.dtype})"
        stream.write(f"[{done:>{width}}/{total}] {item.device:<4} {what}: {item.text} ({item.seconds:.1f} s)\n")
        stream.flush()

    return show


def _check_outputs(args: argparse.Namespace, devices: list[str]) -> Path | None:
    out = None if args.out is None else Path(os.path.expanduser(args.out))
    if out is not None:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is a file; name a directory (check writes check-<device>.json into it)")
        existing = [out / f"check-{d}.json" for d in devices if (out / f"check-{d}.json").exists()]
        if existing and not args.overwrite:
            raise UsageError(f"--out: {existing[0]} exists; pass --overwrite to replace it")
    if args.html is not None and Path(args.html).is_dir():
        raise UsageError(f"--html {args.html} is a directory; name a file, e.g. {Path(args.html) / 'check.html'}")
    if args.propose_rows is not None:
        output_file(args.propose_rows, "--propose-rows", overwrite=args.overwrite)
    if args.record is not None:
        manifest = Path(os.path.expanduser(args.record)) / expectations.MANIFEST
        if manifest.exists() and not args.overwrite:
            raise UsageError(f"--record: {manifest} exists: an expectation set is there already; pass --overwrite "
                             "to replace it")
        if Path(os.path.expanduser(args.record)).is_file():
            raise UsageError(f"--record {args.record} is a file; name a directory for the expectation set")
    if args.repeats < 1:
        raise UsageError(f"--repeats {args.repeats}: must be 1 or more")
    return out


def header(devices: list[str], skipped: dict[str, str]) -> list[str]:
    env = device_environment("cpu")
    lines = [f"check: torch {env['torch']}, numpy {env['numpy']}, python {env['python']}, {env['machine']} "
             f"{env['cpu capability']}, threads {env['threads']}; devices: {', '.join(devices) or 'none'}"]
    lines += [f"{device}: skipped: {why}" for device, why in skipped.items()]
    outside = facts.outside_note()
    if outside:
        lines.append(outside)
        lines += [f"  {f.note()}" for f in facts.version_keyed_facts()]
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    variants = [v for chunk in args.variants for v in chunk.split(",") if v]
    validation = select(args.device, require_cuda=args.require_cuda, patterns=args.k, variants=variants,
                        properties=not args.no_properties)
    out = _check_outputs(args, validation.devices)
    try:
        sets = [expectations.load(Path(os.path.expanduser(d))) for d in args.expect]
    except expectations.ExpectationError as exc:
        raise UsageError(str(exc)) from None
    if sets:
        validation.expect(sets)
    head = header(validation.devices, validation.skipped)
    print("\n".join(head), flush=True)
    changed = injections.active()
    if changed:
        print(f"check: INJECTED CHANGE in effect: {', '.join(changed)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    keep = out is not None or args.record is not None or bool(sets)  # state and first steps' traces
    perform(validation, runner=recording() if keep else None, progress=None if args.quiet else _progress(sys.stderr))
    matrix = validation.matrix()
    page_notes = list(dict.fromkeys(head[1:] + matrix.notes))  # the page says what the header said, once
    matrix.notes = [n for n in page_notes if n not in head]  # the terminal has the header already
    print("\n".join(["", *text.render(matrix)]))
    matrix.notes = page_notes
    print(f"({len(validation.items)} checks in {time.perf_counter() - start:.0f} s)")
    if out is not None:
        for device in validation.devices:
            runs = validation.runs(device)
            if runs:
                path = out / f"check-{device}.json"
                size = save_trajectories(path, record_departures(runs))
                print(f"wrote {path} ({size_text(size)}; python -m reference compare {out} OTHER_DIR)")
    if args.record is not None:
        directory = Path(os.path.expanduser(args.record))
        manifest = expectations.record(directory, repeats(validation, args.repeats), repeats=args.repeats,
                                       overwrite=args.overwrite)
        print(f"wrote the expectation set {directory} ({manifest.name} and the runs of {', '.join(validation.devices)}; "
              f"`check --expect {directory}` on a box of this environment judges it bit for bit)")
    if args.html is not None:
        print(f"wrote {html.write(args.html, matrix)}")
    if args.propose_rows is not None:
        path = Path(os.path.expanduser(args.propose_rows))
        path.write_text(facts.proposed_rows(facts.version_keyed_facts()))
        print(f"wrote {path} (the version-keyed facts measured on torch {facts.installed_torch()}: review them "
              "before they go into specs/torch_behaviour.toml)")
    return matrix.exit_status()


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="check the installed torch against the shipped goldens (no checkout needed)",
        description="Run every golden comparison (each variant, dtype and golden seed) and fast properties "
        "against the installed torch, judged by the shipped policy. Exit status: 0 something was checked and "
        "nothing diverged, 1 something diverged, 2 bad input or nothing that could be checked.",
    )
    p.add_argument("--device", default="cpu", metavar="{cpu,cuda,all}",
                   help="where to run: cpu (default), cuda (an error without a usable GPU), or all (cpu, and "
                        "cuda when usable, saying why not otherwise)")
    p.add_argument("--require-cuda", action="store_true",
                   default=os.environ.get(REQUIRE_CUDA_ENV, "") not in ("", "0"),
                   help=f"exit 2 at once when CUDA is not usable, also with --device all (also: {REQUIRE_CUDA_ENV}=1)")
    p.add_argument("-k", action="append", default=[], metavar="TEXT",
                   help="only rows whose label contains TEXT, e.g. 'mlp.nn float32' (repeatable: any of them)")
    p.add_argument("--variants", action="append", default=[], metavar="ID[,ID...]",
                   help="only these variants (and the properties of their code)")
    p.add_argument("--no-properties", action="store_true", help="golden comparisons only")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the runs to DIR/check-<device>.json, for `compare DIR OTHER_DIR`")
    p.add_argument("--overwrite", action="store_true", help="allow --out / --propose-rows to replace earlier files")
    p.add_argument("--html", default=None, metavar="FILE",
                   help="write a self-contained HTML report (matrix, pictures of what differs, environments)")
    p.add_argument("--propose-rows", default=None, metavar="FILE",
                   help="write the version-keyed facts measured on this torch as rows of specs/torch_behaviour.toml, "
                        "for a maintainer to review (a torch outside the verified range)")
    p.add_argument("--record", default=None, metavar="DIR",
                   help="write an expectation set of this environment to DIR: every golden run, keyed by the "
                        "environment's fingerprint (docs/expectations.md)")
    p.add_argument("--repeats", type=int, default=2, metavar="N",
                   help="with --record: run each golden N times, to record whether this box is bitwise repeatable "
                        "(default: 2)")
    p.add_argument("--expect", action="append", default=[], metavar="DIR",
                   help="judge bit for bit against the expectation set (repeatable) whose fingerprint matches this "
                        "environment; where none does, say which keys differ and judge by the calibrated policy")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines (stderr)")
    p.set_defaults(func=cmd_check)
