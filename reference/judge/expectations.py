"""Expectations per environment: exact where the environment matches, the calibrated policy where it
does not, and always saying which (docs/expectations.md).

An expectation set is a directory a known-good box records (`check --record DIR`, `pytest
--record-expectations DIR`):

    DIR/expectations.json   the manifest: schema, the environment fingerprint of each device
                            (reference.harness.environment.fingerprint), provenance (when, which package
                            and specs, which host), how many repeats were run and, per golden key, the
                            spread of the repeats (0: bitwise repeatable)
    DIR/runs-<device>.json  every golden run, in the results format (losses, parameter digest and record,
                            state fingerprints, the first steps' op traces)

`check --expect DIR [--expect DIR2 ...]` picks, per device, the set whose fingerprint equals this
environment's, and judges each run against it bitwise (within the recorded spread, times a margin,
where the box was not bitwise repeatable). Where no set matches it names the keys by which the
nearest set differs and judges by the cross-machine policy against the shipped goldens, saying so:
never a silent nearest match. Where the fingerprint matches and the bits differ, the fingerprint
missed a factor that decides them: that is said loudly (benchmarks/fingerprint_factors.py finds it).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..catalogue import specs_dir
from ..files import atomic_write
from ..harness.environment import explain_difference, fingerprint
from ..harness.state import first_state_difference
from ..harness.trajectory import Trajectory, read_trajectories, save_trajectories
from .checks import first_difference
from .matrix import Cell
from .rules import policy_table
from .status import Status

MANIFEST = "expectations.json"
SCHEMA = 1


class ExpectationError(ValueError):
    """An expectation set that is missing, corrupt, foreign or partial: one line naming the file."""


def run_key(t: Trajectory) -> str:
    return f"{t.variant} {t.dtype} seed {t.seed}"


def specs_digest() -> str:
    """A digest of the specification the set was recorded against (goldens, policy, tolerances)."""
    h = hashlib.sha256()
    for path in sorted(specs_dir().rglob("*")):
        if path.is_file() and path.suffix in (".toml", ".json"):
            h.update(str(path.relative_to(specs_dir())).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def spread(runs: Sequence[Trajectory]) -> float:
    """The largest relative loss difference among repeats of one run (0: bitwise repeatable)."""
    base = np.asarray(runs[0].losses, dtype=np.float64)
    worst = 0.0
    for t in runs[1:]:
        other = np.asarray(t.losses, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(base == other, 0.0, np.abs(other - base) / np.maximum(np.abs(base), 1e-300))
        worst = max(worst, float(np.nanmax(rel)) if rel.size else 0.0)
    return worst


# --- recording -------------------------------------------------------------------------------------------

def record(directory: Path, runs: Mapping[str, Sequence[Sequence[Trajectory]]], *, repeats: int,
           overwrite: bool = False) -> Path:
    """Write an expectation set: runs[device] = one list of repeats per golden run (the first kept).
    An existing set is refused unless overwrite (ExpectationError naming it)."""
    directory = Path(directory)
    manifest = directory / MANIFEST
    if manifest.exists() and not overwrite:
        raise ExpectationError(f"{manifest} exists: an expectation set is there already; pass --overwrite to replace it")
    if directory.exists() and not directory.is_dir():
        raise ExpectationError(f"{directory} is a file; name a directory for the expectation set")
    directory.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version("torch-examples-spec")
    except PackageNotFoundError:
        package_version = "unknown (not installed)"
    devices = {}
    for device, repeated in runs.items():
        firsts = [group[0] for group in repeated]
        if not firsts:
            continue
        save_trajectories(directory / f"runs-{device}.json", firsts)
        devices[device] = {
            "fingerprint": fingerprint(firsts[0].environment),
            "spread": {run_key(group[0]): spread(group) for group in repeated},
        }
    data = {"schema": SCHEMA, "repeats": repeats, "devices": devices,
            "provenance": {"recorded": datetime.datetime.now().isoformat(timespec="seconds"),
                           "package": package_version, "specs": specs_digest(), "host": platform.node(),
                           "python": platform.python_version()}}
    text = json.dumps(data, indent=1) + "\n"
    atomic_write(manifest, lambda f: f.write(text.encode()), overwrite=True)
    return manifest


# --- reading ---------------------------------------------------------------------------------------------

@dataclass
class ExpectationSet:
    path: Path
    repeats: int
    devices: dict[str, dict[str, Any]]
    provenance: dict[str, Any]
    runs: dict[str, dict[str, tuple[Trajectory, dict[str, str]]]] = field(default_factory=dict)

    def label(self) -> str:
        p = self.provenance
        return f"{self.path} (recorded {p.get('recorded', '?')} on {p.get('host', '?')})"


def load(directory: Path) -> ExpectationSet:
    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise ExpectationError(f"{manifest}: no expectation set here (`check --record {directory}` writes one)")
    try:
        data = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExpectationError(f"{manifest}: corrupt, not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("devices"), dict):
        raise ExpectationError(f"{manifest}: not an expectation set of schema {SCHEMA} (expected 'schema', "
                               "'devices', 'repeats', 'provenance')")
    found = ExpectationSet(directory, int(data.get("repeats", 1)), data["devices"], data.get("provenance", {}))
    for device, entry in data["devices"].items():
        if not isinstance(entry, dict) or "fingerprint" not in entry or "spread" not in entry:
            raise ExpectationError(f"{manifest}: device {device!r} lacks its fingerprint or spread")
        runs_file = directory / f"runs-{device}.json"
        if not runs_file.is_file():
            raise ExpectationError(f"{runs_file}: missing (the set is partial: its manifest names device {device})")
        try:
            runs = read_trajectories(runs_file)
        except ValueError as exc:
            raise ExpectationError(str(exc)) from None
        found.runs[device] = {run_key(t): (t, digest) for t, digest in runs}
        missing = sorted(set(entry["spread"]) - set(found.runs[device]))
        if missing:
            raise ExpectationError(f"{runs_file}: partial, it lacks {missing[0]} (and {len(missing) - 1} more) that "
                                   f"{manifest.name} names")
    return found


# --- choosing a set --------------------------------------------------------------------------------------

@dataclass
class Choice:
    """Which set judges a device here, or why none does."""

    device: str
    chosen: ExpectationSet | None
    note: str  # said in the report, whichever way it went


def choose(sets: Sequence[ExpectationSet], device: str, environment: Mapping[str, Any]) -> Choice:
    """The set whose fingerprint for `device` equals this environment's; else None, naming the keys by
    which the nearest set differs (never a silent nearest match)."""
    here = fingerprint(environment)
    candidates = [s for s in sets if device in s.devices]
    for s in candidates:
        if s.devices[device]["fingerprint"] == here:
            note = f"{device}: expectation set {s.label()} matches this environment's fingerprint: judged bit for bit"
            recorded_specs = s.provenance.get("specs")
            if recorded_specs != specs_digest():
                note += (f"; it was recorded against another specification (specs {recorded_specs}, now "
                         f"{specs_digest()}): a variant's changed hyperparameters change its bits too")
            return Choice(device, s, note)
    if not candidates:
        return Choice(device, None, f"{device}: no expectation set records {device}; judged by the cross-machine "
                                    "policy against the shipped goldens")
    nearest = min(candidates, key=lambda s: len(explain_difference(s.devices[device]["fingerprint"], here)))
    differences = explain_difference(nearest.devices[device]["fingerprint"], here, names=("the set", "here"))
    return Choice(device, None, f"{device}: no expectation for this environment (nearest: {nearest.path}; "
                                f"{'; '.join(differences)}); judged by the cross-machine policy against the "
                                "shipped goldens")


# --- judging a run against a matching set ----------------------------------------------------------------

def judge_exact(chosen: ExpectationSet, device: str, now: Trajectory, policy: Status | None = None) -> Cell:
    """A run against the matching set's run of the same key: bitwise (within the recorded spread times a
    margin, where the recording box was not bitwise repeatable). policy: the cross-machine policy's
    status of the same run against the shipped golden, which tells a real change (beyond it too) from a
    factor the fingerprint missed (within it)."""
    from ..harness.trajectory import params_digest
    from ..trace import compare_traces

    key = run_key(now)
    entry = chosen.runs.get(device, {}).get(key)
    if entry is None:
        return Cell(Status.NOT_COMPARABLE, "not comparable", reason=f"{chosen.path} has no run of {key} on {device}")
    expected, digest = entry
    spread_recorded = float(chosen.devices[device]["spread"].get(key, 0.0))
    k = first_difference(now.losses, expected.losses)
    same_params = params_digest(now.params) == digest if now.params else True
    if k is None and same_params:
        return Cell(Status.EXACT, "exact", reason=f"bit for bit the expectation ({chosen.path})")
    if spread_recorded > 0:
        margin = float(policy_table()["expectations"]["spread_margin"])
        rel = _max_relative(now.losses, expected.losses)
        if rel <= margin * spread_recorded:
            return Cell(Status.CLOSE, f"close {rel:.1e}", reason=f"within {margin:g} x the spread of the "
                        f"recording box's repeats ({spread_recorded:.3g}): it was not bitwise repeatable")
    s = first_state_difference(expected.state_digests, now.state_digests)
    where = [f"the losses part at step {k}" if k is not None else "the losses are bitwise equal"]
    if s is not None:
        where.append(f"the state first differs entering step {s}")
    op = ""
    if expected.trace and now.trace:
        op = "; " + compare_traces(expected.trace, now.trace, now.dtype).line()
    if policy is Status.DIVERGED:
        why = "beyond the cross-machine policy too: what the program computes changed"
    else:
        why = ("within the cross-machine policy, yet the environment's fingerprint matches the set's: the fingerprint "
               "misses a factor that decides the bits (benchmarks/fingerprint_factors.py finds which), or the change "
               "is too small for the policy to see")
    text = f"DIVERGED @{'-' if k is None else k}"
    return Cell(Status.DIVERGED, text, reason=f"{key} on {device} is not bit for bit the expectation's: "
                                              f"{', '.join(where)}{op}; {why}")


def _max_relative(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        return float("inf")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(x == y, 0.0, np.abs(x - y) / np.maximum(np.abs(y), 1e-300))
    return float(np.nanmax(rel)) if rel.size else 0.0
