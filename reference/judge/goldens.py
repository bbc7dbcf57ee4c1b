"""The golden store: reviewable JSON under specs/goldens/<variant>/<dtype>-seed<N>.json, the op trace
kept beside each (<dtype>-seed<N>.trace.json), and the judgement of a run against its golden.

Written only on request (pytest --update-goldens), atomically, and only where the run differs from
what the file holds; read with schema checks that name the file and what is wrong with it.

Schema 2 (this version): the environment block is reference.harness.environment.describe()'s full
record (plus the thread count), `final_params_sha256` the exact digest of the final parameters
(what decides "exact"; the record `final_params` is what the policy's parameter check measures),
and `state_digests` the run's per-step state fingerprints
(See Note [the state parts before the loss]). Schema-1 files (a 6-key environment block, no digests) are read through migrate(): the
loss and parameter bits are untouched. --update-goldens on a machine that reproduces a schema-1
golden bit for bit completes it (digests, its full environment, a provenance note) without
touching a loss.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..catalogue import load_variants, specs_dir
from ..files import atomic_write
from ..harness.environment import describe as describe_environment
from ..harness.threads import CANONICAL_THREADS, gate_threads
from ..harness.trajectory import Trajectory, decode_floats, encode_floats, params_digest, params_record
from ..trace import dumps as dump_trace
from ..trace import loads as load_trace
from .rules import golden_seeds, golden_steps, trace_steps
from .verdict import Verdict, judge

SCHEMA = 2
CANONICAL_DEVICE = "cpu"
GOLDENS_DIR_ENV = "TES_GOLDENS_DIR"
# the keys a schema-1 golden recorded of its environment (all the others: not recorded)
SCHEMA1_ENVIRONMENT = ("torch", "numpy", "python", "machine", "cpu_capability", "threads")


class GoldenError(Exception):
    """A golden file is missing, unreadable or not what it claims to be."""


@dataclass(frozen=True)
class GoldenKey:
    variant: str
    dtype: str
    seed: int

    @property
    def steps(self) -> int:
        return golden_steps(self.variant, load_variants()[self.variant].steps)

    @property
    def path(self) -> Path:
        return goldens_dir() / self.variant / f"{self.dtype}-seed{self.seed}.json"

    @property
    def trace_path(self) -> Path:
        """The op trace of the golden's first steps, kept beside it."""
        return self.path.with_name(f"{self.dtype}-seed{self.seed}.trace.json")

    @property
    def label(self) -> str:
        return f"{self.variant} {self.dtype} seed {self.seed}"

    def __str__(self) -> str:
        return f"{self.variant}-{self.dtype}-seed{self.seed}"


def goldens_dir() -> Path:
    """specs/goldens, unless TES_GOLDENS_DIR points elsewhere (the plugin's own tests use that)."""
    override = os.environ.get(GOLDENS_DIR_ENV)
    return Path(override) if override else specs_dir() / "goldens"


def all_keys(families: tuple[str, ...] | None = None) -> Iterator[GoldenKey]:
    """Every golden the policy says should exist."""
    for vid, variant in load_variants().items():
        if families is not None and variant.family not in families:
            continue
        for dtype in variant.dtypes:
            for seed in golden_seeds(vid):
                yield GoldenKey(vid, dtype, seed)


# --- reading and writing -------------------------------------------------------------------------

def payload(key: GoldenKey, trajectory: Trajectory) -> dict[str, Any]:
    """What a golden file holds for this run (the environment: where it was recorded)."""
    if (trajectory.variant, trajectory.dtype, trajectory.seed, trajectory.device) != (
            key.variant, key.dtype, key.seed, CANONICAL_DEVICE):
        raise ValueError(f"trajectory {trajectory.variant}/{trajectory.dtype}/seed {trajectory.seed} "
                         f"on {trajectory.device} does not belong in golden {key}")
    data = {
        "schema": SCHEMA,
        "variant": key.variant,
        "dtype": key.dtype,
        "seed": key.seed,
        "device": CANONICAL_DEVICE,
        "steps": len(trajectory.losses),
        "hyperparameters": trajectory.hyperparameters,
        "environment": {**describe_environment(CANONICAL_DEVICE), "threads": trajectory.threads},
        "losses": encode_floats(trajectory.losses),
        "final_params": params_record(trajectory.params),
        "final_params_sha256": params_digest(trajectory.params),
    }
    if trajectory.state_digests:
        data["state_digests"] = list(trajectory.state_digests)
    return data


def _text(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=0) + "\n"


# a schema-1 record's sums were torch's (their last digits depend on the thread count): records that
# agree this closely are of the same parameters
SAME_RECORD_RTOL = 1e-12


def _same_losses(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return (old["steps"] == new["steps"]
            and json.dumps(old["hyperparameters"], sort_keys=True) == json.dumps(new["hyperparameters"], sort_keys=True)
            and [repr(float(x)) for x in old["losses"]] == [repr(float(x)) for x in new["losses"]])


def _same_params(old: dict[str, Any], new: dict[str, Any]) -> bool:
    if old.get("final_params_sha256") is not None:
        return old["final_params_sha256"] == new["final_params_sha256"]
    from .checks import param_values

    a, b = param_values(old.get("final_params") or {}), param_values(new["final_params"])
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= SAME_RECORD_RTOL * abs(a[k]) for k in a)


def write(key: GoldenKey, trajectory: Trajectory) -> tuple[Path, str]:
    """Write `key`'s golden from `trajectory` where it differs from the file: (path, what happened).

    written    no file, or other bits (a loss, a final parameter, the steps or hyperparameters)
    unchanged  the same bits and nothing to add: the file, and the environment it names, left alone
    completed  the same bits; what the file lacked (digests, a schema-1 golden's full environment)
               added, with a provenance note; no loss touched

    Atomic (a temp file renamed over the target); a read-only golden is refused (PermissionError),
    a replaced one keeps its mode.
    """
    new = payload(key, trajectory)
    path = key.path
    try:
        old = read(key)
    except GoldenError:
        old = None
    if old is None or not (_same_losses(old, new) and _same_params(old, new)):
        _write(path, new)
        return path, "written"
    if old.get("schema_on_disk") == SCHEMA and old.get("final_params_sha256") and (
            old.get("state_digests") or not new.get("state_digests")):
        return path, "unchanged"
    kept = {k: v for k, v in old.items() if k not in ("schema_on_disk", "migrated_from_schema")}
    completed = dict(kept, schema=SCHEMA, losses=encode_floats(old["losses"]),
                     final_params_sha256=new["final_params_sha256"])
    if new.get("state_digests"):
        completed["state_digests"] = new["state_digests"]
    if old.get("migrated_from_schema") == 1:
        first = old["environment"]
        completed["environment"] = new["environment"]
        completed["final_params"] = new["final_params"]  # the same parameters, exactly rounded sums
        completed["provenance"] = (
            f"recorded with schema 1 on torch {first.get('torch')}, {first.get('machine')} "
            f"{first.get('cpu_capability')}, {first.get('threads')} thread; reproduced bit for bit (every loss, "
            f"the final parameters) and completed on torch {new['environment']['torch']}, "
            f"{new['environment']['cpu_model']}")
    _write(path, completed)
    return path, "completed"


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _text(data)
    atomic_write(path, lambda f: f.write(text.encode()), overwrite=True)


REQUIRED = {"schema": int, "variant": str, "dtype": str, "seed": int, "steps": int, "losses": list,
            "environment": dict, "hyperparameters": dict}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A golden of any schema as schema 2 (schema_on_disk: what the file says): a schema-1 golden
    keeps its losses, parameter record and environment keys; the keys schema 1 did not record stay
    absent (reported as not recorded); it has no digests."""
    data = dict(data, schema_on_disk=data["schema"])
    if data["schema"] != 1:
        return data
    env = {k: v for k, v in data["environment"].items() if k in SCHEMA1_ENVIRONMENT}
    return dict(data, schema=SCHEMA, environment=env, migrated_from_schema=1)


def read(key: GoldenKey) -> dict[str, Any]:
    path = key.path
    if not path.exists():
        raise GoldenError(f"missing golden {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoldenError(f"corrupt golden {path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise GoldenError(f"corrupt golden {path}: top level is {type(data).__name__}, expected an object")
    problems = [f"'{k}' missing" for k in REQUIRED if k not in data]
    problems += [f"'{k}' is {type(data[k]).__name__}, expected {t.__name__}"
                 for k, t in REQUIRED.items() if k in data and not isinstance(data[k], t)]
    if not problems:
        if data["schema"] not in (1, SCHEMA):
            problems.append(f"schema {data['schema']}, this code reads schemas 1 and {SCHEMA}")
        for name, want in (("variant", key.variant), ("dtype", key.dtype), ("seed", key.seed)):
            if data[name] != want:
                problems.append(f"{name} is {data[name]!r}, expected {want!r} for this file name")
        if len(data["losses"]) != data["steps"]:
            problems.append(f"{len(data['losses'])} losses but steps = {data['steps']}")
        digests = data.get("state_digests")
        if digests is not None and (not isinstance(digests, list) or len(digests) != data["steps"] + 1):
            problems.append(f"state_digests must list steps + 1 = {data['steps'] + 1} fingerprints")
        try:
            data["losses"] = decode_floats(data["losses"])
        except (TypeError, ValueError):
            problems.append("losses must all be numbers")
    if problems:
        raise GoldenError(f"wrong-schema golden {path}: " + "; ".join(problems))
    return migrate(data)


def unused_files() -> list[Path]:
    """Files under the goldens folder that no policy key names (goldens and their kept traces)."""
    expected = {p.resolve() for k in all_keys() for p in (k.path, k.trace_path)}
    root = goldens_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.json") if p.resolve() not in expected)


def recorded_torch_versions() -> set[str]:
    """The torch versions the golden files on disk were recorded with."""
    root = goldens_dir()
    versions = set()
    for path in root.rglob("*.json") if root.is_dir() else []:
        if path.name.endswith(".trace.json"):
            continue
        try:
            versions.add(json.loads(path.read_text())["environment"]["torch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return versions


# --- the kept op traces --------------------------------------------------------------------------

def trace_run_arguments(key: GoldenKey) -> dict[str, Any]:
    return dict(seed=key.seed, dtype=key.dtype, threads=CANONICAL_THREADS)


def write_trace(key: GoldenKey, runner: Callable[..., Trajectory]) -> tuple[Path, str]:
    """The op trace of the golden's first steps (specs/golden_policy.toml [trace]), on the CPU at one
    thread as the goldens; written only where it differs from the kept one: (path, what happened)."""
    steps = min(trace_steps(), key.steps)
    trace = runner(key.variant, steps=steps, trace_steps=range(steps), **trace_run_arguments(key)).trace
    text = dump_trace(trace)
    path = key.trace_path
    if path.is_file() and path.read_text() == text:
        return path, "unchanged"
    atomic_write(path, lambda f: f.write(text.encode()), overwrite=True)
    return path, "written"


def read_trace(key: GoldenKey) -> dict[str, Any]:
    """The kept op trace; GoldenError naming the file when it is missing or unreadable."""
    path = key.trace_path
    if not path.is_file():
        raise GoldenError(f"no op trace kept for {key} ({path.name} missing; `pytest --update-goldens -k "
                          f"\"{key.variant}\"` writes it)")
    try:
        return load_trace(path.read_text())
    except (OSError, ValueError) as exc:
        raise GoldenError(f"op trace {path} unreadable ({exc})") from None


# --- a run judged against its golden ------------------------------------------------------------

@dataclass
class GoldenJudgement:
    key: GoldenKey
    device: str
    verdict: Verdict
    now: Trajectory
    golden: dict[str, Any]  # the golden file, as read() returns it
    golden64: list[float] | None  # the float64 golden's losses (the float32 shadow), else None

    @property
    def golden_losses(self) -> list[float]:
        return self.golden["losses"]


def judge_golden(key: GoldenKey, device: str = "cpu", *, runner: Callable[..., Trajectory] | None = None,
                 threads: int | None = None) -> GoldenJudgement:
    """Run `key`'s variant from its seed on `device` and judge it against its golden under the policy:
    the one judgement the pytest gate, `check` and the device checks make.

    runner: reference.run or a memoised stand-in (the gate's cached_run). threads: default the gate's
    (gate_threads(): 1, or TES_THREADS). Raises GoldenError for a missing or corrupt golden, before
    anything runs.
    """
    gold = read(key)
    gold64 = read(GoldenKey(key.variant, "float64", key.seed))["losses"] if key.dtype != "float64" else None
    if runner is None:
        from ..harness.running import run as runner
    now = runner(key.variant, seed=key.seed, dtype=key.dtype, device=device, steps=key.steps,
                 threads=gate_threads() if threads is None else threads)
    record = params_record(now.params)
    same = _same_params(gold, {"final_params": record, "final_params_sha256": params_digest(now.params)})
    verdict = judge(key.variant, key.dtype, now.losses, gold["losses"], device=device, reference64=gold64,
                    now_params=record, reference_params=gold["final_params"], params_equal=same)
    return GoldenJudgement(key, device, verdict, now, gold, gold64)


# --- what a comparison compares (a GPU box mixes device and torch version in the golden tests) ---

def recorded_on(gold: dict[str, Any]) -> str:
    """'torch 2.13.0+cpu, cpu (AVX512, 1 thread)': where a golden file was recorded."""
    env = gold.get("environment", {})
    threads = env.get("threads")
    return (f"torch {env.get('torch', '?')}, {gold.get('device', CANONICAL_DEVICE)} "
            f"({env.get('cpu_capability', '?')}, {threads} thread{'s' if threads != 1 else ''})")


def golden_label(now: Trajectory, gold: dict[str, Any]) -> str:
    """How a run relates to the golden it is judged against: which of device and torch differ."""
    env = gold.get("environment", {})
    differ = [what for what, same in (("device", now.device == gold.get("device", CANONICAL_DEVICE)),
                                      ("torch version", now.torch_version == env.get("torch"))) if not same]
    text = f"golden: {now.device} on torch {now.torch_version} vs the golden recorded on {recorded_on(gold)}"
    if len(differ) == 2:
        return text + "; device and torch version both differ (the device check compares the devices alone)"
    return text + (f"; the {differ[0]} differs" if differ else "")


def device_check_label(now: Trajectory, cpu: Trajectory) -> str:
    """'device check: cuda:0 vs cpu, same torch 2.11.0, same start': the devices alone."""
    same = (f"same torch {now.torch_version}" if now.torch_version == cpu.torch_version
            else f"torch {now.torch_version} vs {cpu.torch_version}")
    return f"device check: {now.device} vs {cpu.device}, {same}, same start"
