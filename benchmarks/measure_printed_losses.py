"""Measure the reference's band of losses at the steps the MLP post prints (specs/printed_losses.toml).

For every variant that implements one of the post's six programs, and every seed: one run at the
tutorial's own dtype (float32), one thread; the losses at steps 99, 199, ..., 499 are kept. Per
variant and step it writes the band over the seeds ([min, max], and the 1 % / 99 % quantiles for the
record) to specs/printed_loss_bands.toml, with the first seeds' values as witnesses that
tests/test_documents.py re-runs on the current torch.

A variant that specs/equivalences.toml says gives another's bits (its losses bit for bit at the
tutorial's dtype, from the same seed, on this torch) is run on the witness seeds only, checked equal,
and shares that one's band: mlp.custom_function mlp.tensor's, and mlp.autograd too where clamp
passes the gradient at 0 (on torch 2.14 it gets a band of its own: See Note [clamp gradient at 0]).

    python benchmarks/measure_printed_losses.py --seeds 0-199 --raw /tmp/printed.jsonl --write
    python benchmarks/measure_printed_losses.py --raw /tmp/printed.jsonl --write    # from what is there

Runs are appended to --raw as they finish, so an interrupted sweep resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import sys
import tomllib
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from reference.harness.planning import parse_seeds  # noqa: E402

WITNESSES = 5
DTYPE = "float32"  # the tutorial's own, the one every run here makes


@cache
def shared() -> dict[str, str]:
    """variant -> the variant whose bits it gives at DTYPE on this torch (specs/equivalences.toml),
    followed through chains to one that is run on every seed."""
    from reference.judge.equivalence import equivalences
    from reference.facts import fact

    same = {}
    for row in equivalences():
        tol = row.tolerances.get("losses", {}).get(DTYPE)
        if row.start == "seed" and tol is not None and tol.exact and (
                row.bitwise_requires is None or fact(row.bitwise_requires) == 1.0):
            same[row.a] = row.b
    out = {}
    for a, b in same.items():
        while b in same:
            b = same[b]
        out[a] = b
    return out


def spec() -> dict:
    with (ROOT / "specs" / "printed_losses.toml").open("rb") as f:
        return tomllib.load(f)


def one(job: tuple[str, int, list[int]]) -> dict:
    variant_id, seed, steps = job
    import reference

    t = reference.run(variant_id, seed=seed, dtype=DTYPE, threads=1)
    return dict(variant=variant_id, seed=seed, losses=[t.losses[s] for s in steps], torch=t.torch_version,
                cpu=t.cpu_capability)


def sweep(seeds: list[int], raw: Path, jobs: int) -> None:
    s = spec()
    variants = list(dict.fromkeys(p["variant"] for p in s["program"].values()))
    done = {(r["variant"], r["seed"]) for r in read_raw(raw)}
    todo = [
        (v, seed, s["steps"]) for seed in seeds for v in variants
        if (v, seed) not in done and (v not in shared() or seed < WITNESSES)
    ]
    print(f"{len(todo)} runs to do ({len(done)} already in {raw})", flush=True)
    with raw.open("a") as out, ProcessPoolExecutor(jobs) as pool:
        for i, r in enumerate(pool.map(one, todo)):
            out.write(json.dumps(r) + "\n")
            out.flush()
            if i % 20 == 0:
                print(f"  {i + 1}/{len(todo)} {r['variant']} seed {r['seed']}", flush=True)


def read_raw(raw: Path) -> list[dict]:
    if not raw.exists():
        return []
    return [json.loads(line) for line in raw.read_text().splitlines() if line.strip()]


def bands(raw: Path) -> tuple[dict, list[str]]:
    s = spec()
    rows = read_raw(raw)
    by = {}
    for r in rows:
        by.setdefault(r["variant"], {})[r["seed"]] = r["losses"]
    notes, out = [], {}
    sources = {shared().get(p["variant"], p["variant"]) for p in s["program"].values()}
    n = 0  # the seeds 0..n-1 that every variant has (a sweep may have stopped mid-seed)
    while all(n in by.get(v, {}) for v in sources):
        n += 1
    for v in dict.fromkeys(p["variant"] for p in s["program"].values()):
        source = shared().get(v, v)
        values = by[source]
        seeds = list(range(n))
        if v in shared():
            for seed, losses in by.get(v, {}).items():
                if losses != values[seed]:
                    raise SystemExit(f"{v} seed {seed} differs from {source}: cannot share its band")
            notes.append(f"{v}: equal to {source} bit for bit on seeds {sorted(by.get(v, {}))} on this torch; "
                         "shares its band")
        a = np.array([values[i] for i in seeds])  # (N, steps)
        half = a[: len(seeds) // 2]
        out[v] = dict(
            band_from=source,
            n=len(seeds),
            min=a.min(0).tolist(),
            max=a.max(0).tolist(),
            q01=np.quantile(a, 0.01, axis=0).tolist(),
            q99=np.quantile(a, 0.99, axis=0).tolist(),
            median=np.median(a, 0).tolist(),
            # stability: how much of the band (in log10) the second half of the seeds added
            half_min=half.min(0).tolist(),
            half_max=half.max(0).tolist(),
            witnesses=[values[i] for i in range(min(WITNESSES, len(seeds)))],
        )
    return out, notes


def fmt(xs) -> str:
    return "[" + ", ".join(repr(float(x)) for x in xs) + "]"


def write(raw: Path, target: Path, command: str) -> None:
    s = spec()
    out, notes = bands(raw)
    env = read_raw(raw)[0]
    lines = [
        "# The reference's band of losses at the steps the MLP post prints (specs/printed_losses.toml),",
        "# per variant and step, over seeds 0..n-1 at the tutorial's own dtype (float32), one thread.",
        f"# Written by: {command}",
        f"# on {date.today().isoformat()}, torch {env['torch']}, CPU capability {env['cpu']}.",
        "# band = [min, max] over the n seeds (a fresh draw from the same distribution falls outside it",
        "# with probability 2 / (n + 1)); q01 / q99 / median are for the record. half_min / half_max: the",
        "# band over the first n/2 seeds (how much the second half widened it: the band's stability).",
        "# witnesses: the losses of seeds 0..4, which tests/test_documents.py re-runs on the current torch.",
        "# n: the sweep runs until stopped (resumable); more seeds can only widen [min, max], so a printed",
        "# number inside the band stays inside, while a narrower band (fewer seeds) is the stricter test.",
        "# Why an unseeded GPU run on torch 1.10 belongs inside: it draws x, y and the weights from the",
        "# same distributions (standard normal; nn.Linear's default uniform init, unchanged since 1.0) with",
        "# another generator, and computes the same float32 arithmetic in another order (CUDA kernels;",
        "# TF32 matmul only on Ampere or newer, which is the cause of pytorch/pytorch#47844 where this",
        "# program stopped converging: its printed losses converge). Run-order effects are measured at",
        "# <= 1.5e-2 relative (golden_policy.toml), far inside bands that span 1 .. 5 decades.",
        f"steps = {s['steps']}",
        "",
    ]
    lines += [f"# {n}" for n in notes]
    for v, b in out.items():
        lines.append(f'[variant."{v}"]')
        lines.append(f'band_from = "{b["band_from"]}"')
        lines.append(f"n = {b['n']}")
        for k in ("min", "max", "q01", "q99", "median", "half_min", "half_max"):
            lines.append(f"{k} = {fmt(b[k])}")
        lines.append("witnesses = [")
        lines += [f"  {fmt(w)}," for w in b["witnesses"]]
        lines += ["]", ""]
    target.write_text("\n".join(lines))
    print(f"wrote {target}")


def report(raw: Path) -> None:
    s = spec()
    out, notes = bands(raw)
    for n in notes:
        print(n)
    for name, p in s["program"].items():
        b = out[p["variant"]]
        print(f"{name} ({p['variant']}, band over {b['n']} seeds of {b['band_from']}):")
        values = np.array([r["losses"] for r in read_raw(raw) if r["variant"] == b["band_from"]
                           and r["seed"] < b["n"]])
        for i, step in enumerate(s["steps"]):
            x = p["printed"][i]
            inside = b["min"][i] <= x <= b["max"][i]
            below = int((values[:, i] < x).sum())
            print(f"  step {step}: printed {x:.4g}  band [{b['min'][i]:.4g}, {b['max'][i]:.4g}]"
                  f"  (first half [{b['half_min'][i]:.4g}, {b['half_max'][i]:.4g}])"
                  f"  median {b['median'][i]:.4g}  {below}/{b['n']} seeds below it"
                  f"  {'inside' if inside else 'OUTSIDE'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default=None, help="e.g. 0-199 (default: run nothing, use --raw as it is)")
    ap.add_argument("--raw", required=True, help="JSON lines of the runs (appended to; resumable)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--write", action="store_true", help="write specs/printed_loss_bands.toml")
    args = ap.parse_args(argv)
    raw = Path(args.raw)
    if args.seeds:
        sweep(parse_seeds(args.seeds), raw, args.jobs)
    report(raw)
    if args.write:
        n = bands(raw)[0]["mlp.tensor"]["n"]
        write(raw, ROOT / "specs" / "printed_loss_bands.toml",
              f"python benchmarks/measure_printed_losses.py --seeds 0-{n - 1} --raw FILE --write")
    return 0


if __name__ == "__main__":
    sys.exit(main())
