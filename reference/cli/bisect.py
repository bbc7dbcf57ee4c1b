"""`bisect --good A --bad B [ID ...]`: which torch release changed what these programs compute, in which
op, beyond the policy or not, and what else changed across the boundary (reference/bisect/).
Exit status: 0 nothing changed in the range, 1 something did, 2 bad input."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from packaging.version import InvalidVersion, Version

from ..bisect.environments import Interpreter, Release, available_releases, check_cache
from ..bisect.search import Result, Search, Unavailable
from ..catalogue import load_variants, lookup
from ..errors import UsageError
from ..files import atomic_write
from ..judge.matrix import Column, Matrix, Row, baseline_cell, missing_cell, verdict_cell
from ..judge.verdict import judge
from ..report import html
from ..report.table import table
from .arguments import output_file

DTYPES = ("float32", "float64", "both")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _version(text: str, flag: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise UsageError(f"{flag} {text!r} is not a version (e.g. 2.13.0)") from None


def releases(args: argparse.Namespace) -> list[str]:
    """The releases from --good to --bad, oldest first, from --versions or the package index."""
    if not args.good or not args.bad:
        raise UsageError("name the range: --good VERSION --bad VERSION (or the interpreters, in order, with --python)")
    good, bad = _version(args.good, "--good"), _version(args.bad, "--bad")
    if good == bad:
        raise UsageError(f"--good and --bad are both {args.good}: nothing lies between them")
    if good > bad:
        raise UsageError(f"--good {args.good} is newer than --bad {args.bad}: the good release comes first")
    if args.versions:
        listed = [v.strip() for v in args.versions.split(",") if v.strip()]
        for v in listed:
            _version(v, "--versions")
    else:
        listed = available_releases(args.index_url, args.pre)
    known = {Version(v): v for v in listed}

    def distance(v: Version, w: Version) -> int:
        a, b = (v.release + (0, 0, 0))[:3], (w.release + (0, 0, 0))[:3]
        return abs((a[0] * 100 + a[1]) * 100 + a[2] - ((b[0] * 100 + b[1]) * 100 + b[2]))

    for flag, wanted in (("--good", good), ("--bad", bad)):
        if wanted not in known:
            near = sorted(sorted(known, key=lambda v: distance(v, wanted))[:5])
            raise UsageError(f"{flag} {wanted}: not a torch release {'listed' if args.versions else 'on the index'}. "
                             f"Valid choices near it: {', '.join(map(str, near))}")
    return [known[v] for v in sorted(known) if good <= v <= bad]


def short_labels(interpreters: list[Any]) -> list[Any]:
    """Label each interpreter by its torch version where that tells it apart (a path is a long name for
    a table), saying once which path it is; by path and version where two hold the same torch."""
    versions = [e.version for e in interpreters]
    for e in interpreters:
        if versions.count(e.version) == 1:
            _say(f"bisect: torch {e.version} is {e.python}")
            e.label = f"torch {e.version}"
    return interpreters


def targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    ids = args.ids or list(load_variants())
    for vid in ids:
        lookup(vid)
    out = []
    for vid in ids:
        dtypes = lookup(vid).dtypes if args.dtype == "both" else [args.dtype]
        out += [(vid, d) for d in dtypes if d in lookup(vid).dtypes]
    return out


def _matrix(search: Search, found: list[Result]) -> Matrix:
    """The runs of every tested environment, each judged against the first's (the good one)."""
    tested = [i for i in range(len(search.envs)) if search._runs.get(i)]
    columns = [Column(search.envs[i].label, {"environment": search.envs[i].label}, reference=i == tested[0])
               for i in tested]
    rows = []
    for result in found:
        target = (result.variant, result.dtype)
        good = search._runs[tested[0]][target]
        cells = [baseline_cell("good")]
        for i in tested[1:]:
            run = search._runs[i].get(target)
            cells.append(missing_cell("not run") if run is None else verdict_cell(judge(
                *target, run.losses, good.losses, now_params=run.params_record(), reference_params=good.params_record())))
        rows.append(Row(f"{result.variant} {result.dtype}", cells))
    matrix = Matrix("torch-examples-spec bisect", columns, rows)
    matrix.notes = [f"{r.variant} {r.dtype}: first changed in {r.first_changed} (last the same: {r.last_same}); "
                    f"{r.first_op or ''}" for r in found if r.first_changed]
    return matrix


def cmd_bisect(args: argparse.Namespace) -> int:
    if args.dtype not in DTYPES:
        raise UsageError(f"--dtype {args.dtype!r} is not a choice. Valid choices: {', '.join(DTYPES)}")
    wanted = targets(args)
    json_out = None if args.json is None else output_file(args.json, "--json", overwrite=True)
    html_out = None if args.html is None else output_file(args.html, "--html", overwrite=True)
    if args.python:
        if len(args.python) < 2:
            raise UsageError("--python needs at least two interpreters, the good one first")
        envs: list[Any] = short_labels([Interpreter(p, progress=_say) for p in args.python])
    else:
        versions = releases(args)
        check_cache()  # before any environment is made
        envs = [Release(v, installer=args.installer, index_url=args.index_url, progress=_say) for v in versions]
    _say(f"bisect: {len(wanted)} runs ({args.dtype}) across {len(envs)} environments: "
         f"{', '.join(e.label for e in envs)}")
    search = Search(envs, wanted, progress=_say, exhaustive=args.exhaustive)
    try:
        found = search.run()
    except Unavailable as exc:
        raise UsageError(str(exc)) from None
    rows = [[f"{r.variant} {r.dtype}", r.last_same or "-", r.first_changed or "(none)",
             "-" if r.beyond_policy is None else ("beyond" if r.beyond_policy else "bits only"),
             ", ".join(f"{k} {a} -> {b}" for k, (a, b) in r.env_changed.items()) or "-"] for r in found]
    print("\n".join(table(["run", "last same", "first changed", "policy", "also changed across it"], rows)))
    changed = [r for r in found if r.first_changed]
    for r in changed:
        print(f"\n{r.variant} {r.dtype}: {r.first_op}")
        for note in r.notes:
            print(f"  {note}")
    for label, why in search.skipped.items():
        print(f"skipped {label}: {why}")
    print(f"\ntested: {', '.join(search.tested)}")
    print(f"{len(changed)} of {len(found)} runs changed in the range" + (
        "; every other run keeps its bits" if changed else ": every run keeps its bits"))
    if json_out is not None:
        data = {"tested": search.tested, "skipped": search.skipped, "results": [r.to_json() for r in found]}
        text = json.dumps(data, indent=1) + "\n"
        atomic_write(json_out, lambda f: f.write(text.encode()), overwrite=True)
        print(f"wrote {json_out}")
    if html_out is not None:
        print(f"wrote {html.write(html_out, _matrix(search, found))}")
    return 1 if changed else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bisect", help="find the torch release that changed what a program computes, and the op",
        description="Run the variants in one environment per torch release between --good and --bad (from the "
        "package index your installer uses, or --versions), or in the interpreters you give (--python), and "
        "find per variant and dtype the last release with the good release's bits and the first without: the "
        "op where they part, whether the change is beyond the policy, and what else changed across it. "
        "Environments are cached (TES_CACHE_DIR, else ~/.cache/torch-examples-spec) and reused; an interrupted "
        "bisect resumes. Exit status: 0 nothing changed, 1 something did, 2 bad input.")
    p.add_argument("ids", nargs="*", metavar="ID", help="variant ids (default: every variant)")
    p.add_argument("--good", default=None, metavar="VERSION", help="the release known to compute the expected bits")
    p.add_argument("--bad", default=None, metavar="VERSION", help="the release that computes others")
    p.add_argument("--dtype", default="both", help="float32, float64 or both (default: both)")
    p.add_argument("--versions", default=None, metavar="V1,V2,...", help="the releases to consider (default: the index's)")
    p.add_argument("--python", nargs="+", default=None, metavar="PATH",
                   help="interpreters you already have, good first, in order: nothing is installed")
    p.add_argument("--index-url", default=None, metavar="URL", help="the package index to list and install from")
    p.add_argument("--pre", action="store_true", help="include pre-releases and nightlies")
    p.add_argument("--exhaustive", action="store_true", help="run every release in the range, not a binary search")
    p.add_argument("--installer", default="auto", choices=("auto", "uv", "pip"),
                   help="what makes the environments (auto: uv where it is on PATH, else venv + pip)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    p.add_argument("--html", default=None, metavar="FILE", help="write a self-contained HTML report")
    p.set_defaults(func=cmd_bisect)
