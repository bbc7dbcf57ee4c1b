"""From the calibration's runs to the policy rows, their evidence and the report (see ensemble.py).

Tolerances come from the benign runs only; the real changes are then judged by them, with the
same reference.judge.verdict.judge the gate runs. A leave-one-configuration-out pass re-derives every
row without each benign configuration in turn and judges that configuration's runs with it: how a
configuration the calibration has never seen (another CPU) would fare.
See Note [a CPU the calibration never saw] and Note [benign drift grows like a real change] in
specs/golden_policy.toml.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


from ..catalogue import load_variants
from ..judge.checks import param_values, relative_error, shadow_distance, tail_statistics
from ..judge.rules import Rule, golden_seeds, policy_table
from ..judge.verdict import Verdict, judge as judge_pair
from .ensemble import load, seeds_for
from .outputs import Judged, RowReport, render_report, write_outputs



@dataclass
class Pair:
    """One benign or real run and the canonical run of the same seed."""

    config: str
    seed: int
    run: dict
    canon: dict
    canon64: dict | None  # the canonical float64 run of the same seed (float32 shadow)


def staircase(value: float, levels: list[float]) -> float:
    """The smallest level (levels x a power of ten) >= value."""
    exponent = math.floor(math.log10(value))
    for e in (exponent, exponent + 1):
        for m in levels:
            if m * 10.0 ** e >= value * (1 - 1e-12):
                return m * 10.0 ** e
    return 10.0 ** (exponent + 1)


def derive(vid: str, dtype: str, pairs: list[Pair], cal: dict, inflate: dict | None = None,
           horizon: int | None = None) -> dict:
    """One policy row (the TOML table) from the benign pairs of one variant and dtype.

    inflate: per check (bands, tail, shadow, params), a factor on its margin (the jackknife's);
    horizon: where the bands end (default: where a step would need more than max_pointwise_rtol).
    """
    inflate = inflate or {}
    cal = {k: (v[dtype] if isinstance(v, dict) else v) for k, v in cal.items()}  # per-dtype values
    eps = float(np.finfo(dtype).eps)
    n = len(pairs[0].canon["losses"])
    envelope = np.zeros(n)
    for p in pairs:
        err = relative_error(p.run["losses"], p.canon["losses"])
        envelope = np.maximum(envelope, np.where(np.isnan(err), np.inf, err))
    running = np.maximum.accumulate(envelope)
    lead = int(inflate.get("lead", 0))  # the band at step t follows the envelope at step t + lead
    running = running[np.minimum(np.arange(n) + lead, n - 1)]
    need = np.maximum(cal["margin"] * running, cal["floor_eps"] * eps)
    if horizon is None:
        beyond = np.flatnonzero(need > cal["max_pointwise_rtol"])
        horizon = int(beyond[0]) if beyond.size else n
    bands: list[dict] = []
    for t in range(horizon):
        level = staircase(float(need[t]), cal["levels"])
        if bands and bands[-1]["rtol"] == level:
            bands[-1]["to"] = t + 1
        else:
            bands.append({"from": t, "to": t + 1, "rtol": level, "atol": 0.0})
    row: dict = {"bands": bands}
    if horizon < n:
        worst = 0.0
        for p in pairs:
            d = np.abs(tail_statistics(p.run["losses"], horizon, cal["tail_segments"])
                       - tail_statistics(p.canon["losses"], horizon, cal["tail_segments"]))
            worst = max(worst, float(np.nanmax(d)) if np.all(np.isfinite(d)) else math.inf)
        atol = cal["tail_margin"] * inflate.get("tail", 1.0) * worst
        row["tail"] = {"segments": cal["tail_segments"], "atol": max(atol, cal["tail_floor"])}
    if dtype == "float32" and all(p.canon64 is not None for p in pairs):
        # benign runs land on both sides of the golden's distance: the spread, not the one-sided excess
        spread = max(abs(shadow_distance(p.run["losses"], p.canon64["losses"])
                         - shadow_distance(p.canon["losses"], p.canon64["losses"])) for p in pairs)
        allowance = cal["shadow_margin"] * inflate.get("shadow", 1.0) * spread
        row["shadow"] = {"allowance": max(allowance, cal["shadow_floor"])}
    rel, absolute, scale = 0.0, 0.0, 0.0
    for p in pairs:
        mine, gold = param_values(p.run["params"]), param_values(p.canon["params"])
        largest = max((abs(v) for v in gold.values()), default=0.0)
        scale = max(scale, largest)
        for k, v in gold.items():
            d = abs(mine[k] - v)
            if abs(v) >= 0.01 * largest and v != 0:
                rel = max(rel, d / abs(v))
            else:
                absolute = max(absolute, d)
    floor = cal["params_floor_eps"] * eps
    m = cal["params_margin"] * inflate.get("params", 1.0)
    row["params"] = {"rtol": max(m * rel, floor), "atol": max(m * absolute, floor * scale)}
    return row


def check_factors(rule: Rule, p: Pair) -> dict[str, float]:
    """For one pair, per check: the largest deviation / what the rule allows (>= 1: it fails)."""
    a, g = np.asarray(p.run["losses"]), np.asarray(p.canon["losses"])
    out = {"bands": 0.0, "tail": 0.0, "shadow": 0.0, "params": 0.0}
    for band in rule.bands:
        lo, hi = band.start, min(band.stop, len(a))
        if lo < hi:
            allowed = band.tolerance.allowed(g[lo:hi])
            out["bands"] = max(out["bands"], float(np.max(np.abs(a[lo:hi] - g[lo:hi]) / allowed)))
    if rule.tail is not None and rule.horizon < len(a):
        d = np.abs(tail_statistics(a, rule.horizon, rule.tail.segments) - tail_statistics(g, rule.horizon, rule.tail.segments))
        out["tail"] = float(np.max(d) / rule.tail.atol)
    if rule.shadow_allowance is not None and p.canon64 is not None:
        s = np.asarray(p.canon64["losses"])
        out["shadow"] = max(shadow_distance(a, s) - shadow_distance(g, s), 0.0) / rule.shadow_allowance
    if rule.params is not None:
        mine, gold = param_values(p.run["params"]), param_values(p.canon["params"])
        out["params"] = max((abs(mine[k] - v) / (rule.params.atol + rule.params.rtol * abs(v)) for k, v in gold.items()),
                            default=0.0)
    return {k: (v if not math.isnan(v) else math.inf) for k, v in out.items()}


def jackknife(vid: str, dtype: str, pairs: list[Pair], cal: dict) -> tuple[dict, dict[str, float], dict[str, dict]]:
    """The row, with each check's margin widened by how far a configuration left out of the
    ensemble exceeded what the others allowed (x jackknife_safety): the bands by a lead in steps
    (benign divergence that starts earlier), the scalar checks by a factor; also those per config.

    Leaving one configuration out is the closest the calibration gets to a CPU it has never seen."""
    configs = sorted({p.config for p in pairs})
    safety = cal["jackknife_safety"]


    def factors(row_of_others, held: str) -> dict[str, float]:
        out = {"bands": 0.0, "tail": 0.0, "shadow": 0.0, "params": 0.0}
        rule = Rule.from_table(vid, dtype, "cpu", row_of_others)
        for p in pairs:
            if p.config == held:
                for k, v in check_factors(rule, p).items():
                    out[k] = max(out[k], v)
        return out

    def others(held: str) -> list[Pair]:
        return [p for p in pairs if p.config != held]

    def passes_bands(held: str, lead: int) -> bool:
        rule = Rule.from_table(vid, dtype, "cpu", derive(vid, dtype, others(held), cal, {"lead": lead}))
        return all(check_factors(rule, p)["bands"] <= 1.0 for p in pairs if p.config == held)

    # bands: the smallest lead (in steps) that lets each left-out configuration pass, by bisection
    # (a longer lead only widens every band and moves the horizon earlier)
    n = len(pairs[0].canon["losses"])
    needed_lead = 0
    for c in configs:
        if not others(c) or passes_bands(c, 0):
            continue
        lo, hi = 0, n
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if passes_bands(c, mid) else (mid, hi)
        needed_lead = max(needed_lead, hi)
    inflate = {"lead": min(n, int(math.ceil(safety * needed_lead)))}
    full = derive(vid, dtype, pairs, cal, inflate)
    horizon = full["bands"][-1]["to"] if full["bands"] else 0
    held_out: dict[str, dict] = {}
    for c in configs:
        if others(c):
            held_out[c] = factors(derive(vid, dtype, others(c), cal, {"lead": inflate["lead"]}, horizon), c)
            held_out[c]["needed_lead"] = needed_lead
    for check in ("tail", "shadow", "params"):
        worst = max((f[check] for f in held_out.values()), default=0.0)
        inflate[check] = max(1.0, safety * worst)
    row = derive(vid, dtype, pairs, cal, inflate, horizon)
    row["inflation"] = inflate
    return row, inflate, held_out


GOLDEN_CONFIG = "golden-host"


def golden_pairs(vid: str, dtype: str, seeds: list[int], runs) -> list[Pair]:
    """The golden files themselves, against this machine's canonical run of the same seed: the
    machine that recorded them is one more benign configuration (its CPU, its BLAS kernels)."""
    from ..judge.goldens import GoldenError, GoldenKey, read

    out = []
    for seed in golden_seeds(vid):
        canon = runs("canonical", seed).get(f"{vid}/{dtype}")
        try:
            record = read(GoldenKey(vid, dtype, seed))
        except GoldenError:
            continue
        if canon is None or len(record["losses"]) != len(canon["losses"]):
            continue
        run = {"losses": np.array(record["losses"], dtype=np.float64), "params": record["final_params"]}
        canon64 = runs("canonical", seed).get(f"{vid}/float64") if dtype != "float64" else None
        out.append(Pair(GOLDEN_CONFIG, seed, run, canon, canon64))
    return out


def judge(pair: Pair, vid: str, dtype: str, rule: Rule) -> Verdict:
    return judge_pair(vid, dtype, pair.run["losses"], pair.canon["losses"],
                      reference64=None if pair.canon64 is None else pair.canon64["losses"],
                      now_params=pair.run["params"], reference_params=pair.canon["params"], rule=rule)


def analyse(workdir: Path, benign: list[str], real: list[str], seeds: list[int], variants: list[str],
            *, write: bool, partial: bool = False) -> list[RowReport]:
    """Derive, judge and report the rows of `variants`; with `write`, write them (`partial`: only some
    variants were calibrated, so their rows replace theirs in the files and every other row stays)."""
    cal = policy_table()["calibration"]
    cache: dict = {}

    def runs(config: str, seed: int) -> dict:
        if (config, seed) not in cache:
            cache[config, seed] = load(workdir, config, seed)
        return cache[config, seed]

    reports: list[RowReport] = []
    for vid in variants:
        variant = load_variants()[vid]
        for dtype in variant.dtypes:
            key, key64 = f"{vid}/{dtype}", f"{vid}/float64"

            def pairs_of(configs: list[str]) -> list[Pair]:
                out = []
                for config in configs:
                    for seed in seeds_for(vid, seeds):
                        run, canon = runs(config, seed).get(key), runs("canonical", seed).get(key)
                        if run is not None and canon is not None:
                            out.append(Pair(config, seed, run, canon,
                                            runs("canonical", seed).get(key64) if dtype != "float64" else None))
                return out

            others = [c for c in benign if c != "canonical"]
            benign_pairs = pairs_of(others) + golden_pairs(vid, dtype, seeds, runs)
            others = others + [GOLDEN_CONFIG]
            if not benign_pairs:
                print(f"calibrate: no benign runs for {key}; skipped")
                continue
            row, inflate, held_out = jackknife(vid, dtype, benign_pairs, cal)
            rule = Rule.from_table(vid, dtype, "cpu", row)
            report = RowReport(vid, dtype, row)
            report.inflation = inflate
            report.held_out_factors = held_out
            for p in benign_pairs:
                report.benign.append(Judged(p.config, p.seed, judge(p, vid, dtype, rule)))
                err = relative_error(p.run["losses"], p.canon["losses"])
                t = int(np.nanargmax(err)) if np.any(err > 0) else 0
                if err[t] > report.benign_max[0]:
                    report.benign_max = (float(err[t]), p.config, p.seed, t)
            for held, f in held_out.items():  # the scalar checks before their inflation
                report.held_out[held] = max(v for k, v in f.items() if k in ("tail", "shadow", "params"))
            for change in real:
                report.real[change] = [Judged(p.config, p.seed, judge(p, vid, dtype, rule)) for p in pairs_of([change])]
            reports.append(report)
    text = render_report(reports, benign, real, seeds)
    print(text)
    if write:
        write_outputs(reports, text, benign, seeds, partial=partial)
    return reports

