"""The suite's pytest plugin: options, device/dtype parametrisation, CUDA policy, Hypothesis profiles.

Markers are declared in pyproject.toml (--strict-markers is on).
"""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, Phase, register_random, settings

# --- Hypothesis -------------------------------------------------------------------------------


class _TorchGlobalRandom:
    """Lets Hypothesis seed and restore torch's global generator like it does `random`'s."""

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def getstate(self) -> torch.Tensor:
        return torch.get_rng_state()

    def setstate(self, state: torch.Tensor) -> None:
        torch.set_rng_state(state)


_torch_random = _TorchGlobalRandom()  # register_random holds a weak reference: keep this one alive
register_random(_torch_random)

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, **_common)
settings.register_profile(
    "ci", max_examples=25, derandomize=True, database=None, print_blob=True, **_common
)
settings.register_profile(
    "thorough", max_examples=500, phases=list(Phase), **_common
)
settings.load_profile("ci" if os.environ.get("CI", "").lower() not in ("", "0", "false") else "dev")

# --- options -----------------------------------------------------------------------------------

REQUIRE_CUDA_ENV = "TES_REQUIRE_CUDA"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torch-examples-spec")
    group.addoption(
        "--require-cuda",
        action="store_true",
        default=os.environ.get(REQUIRE_CUDA_ENV, "") not in ("", "0"),
        help=f"fail, instead of skipping, when CUDA tests are selected and no GPU is usable "
        f"(also: {REQUIRE_CUDA_ENV}=1)",
    )
    group.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the golden trajectories of the selected golden tests (never written otherwise)",
    )
    group.addoption(
        "--record-trajectories",
        default=None,
        metavar="DIR",
        help="write the trajectories of the session's shared runs (cached_run) to DIR/<worker>.json "
        "for `python -m reference compare` (tox does this per env)",
    )
    group.addoption(
        "--artifacts-dir",
        default=os.environ.get("TES_ARTIFACTS_DIR", "artifacts"),
        help="where failing golden comparisons write their plots and reports (default: artifacts/)",
    )


def cuda_unavailable_reason() -> str | None:
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"CUDA not available: torch {torch.__version__} is a CPU-only build"
    return f"CUDA not available: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if config.getoption("--require-cuda") and not hasattr(config, "workerinput"):
        reason = cuda_unavailable_reason()
        if reason is not None:
            pytest.exit(f"--require-cuda: {reason}; the CUDA tests cannot run here.", returncode=3)


# --- device / dtype parametrisation (PyTorch device-generic style) ----------------------------

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.cpu, id="cpu"),
    pytest.param("cuda", marks=pytest.mark.cuda, id="cuda"),
]
DTYPES = ["float32", "float64"]


@pytest.hookimpl(trylast=True)  # after explicit parametrisation, so ids end in cpu_float64
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests asking for `device` and/or `dtype` get ids like `cpu_float64`, as in PyTorch."""
    names = [n for n in ("device", "dtype") if n in metafunc.fixturenames]
    if not names or any(n in _explicitly_parametrized(metafunc) for n in names):
        return
    if names == ["device"]:
        metafunc.parametrize("device", DEVICES)
    elif names == ["dtype"]:
        metafunc.parametrize("dtype", DTYPES)
    else:
        combos = [
            pytest.param(d.values[0], dt, marks=d.marks, id=f"{d.id}_{dt}") for d in DEVICES for dt in DTYPES
        ]
        metafunc.parametrize("device,dtype", combos)


def _explicitly_parametrized(metafunc: pytest.Metafunc) -> set[str]:
    names: set[str] = set()
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0]
        names.update(n.strip() for n in (argnames.split(",") if isinstance(argnames, str) else argnames))
    return names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markexpr = config.getoption("-m") or ""
    skip_slow = pytest.mark.skip(reason="slow: not in the default gate; run with -m slow")
    for item in items:
        if "slow" in item.keywords and "slow" not in markexpr:
            item.add_marker(skip_slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cuda") is None:
        return
    reason = cuda_unavailable_reason()
    if reason is None:
        return
    if item.config.getoption("--require-cuda"):
        pytest.fail(f"--require-cuda: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest):
    from pathlib import Path

    return Path(request.config.getoption("--artifacts-dir"))


# --- shared runs ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def cached_run(pytestconfig: pytest.Config):
    """reference.run memoised for the session (per xdist worker): tests that need the same
    canonical trajectory share one run. Tests of determinism call reference.run directly.
    With --record-trajectories DIR, the runs are written to DIR at the end of the session."""
    import reference
    from reference.harness import plan

    cache: dict[tuple, object] = {}

    def run(variant_id: str, **kwargs):
        p = plan(variant_id, **kwargs)  # resolved, so that equal runs spelled differently share a key
        key = (p.variant.id, p.seed, str(p.device), p.dtype, p.steps, p.threads,
               tuple(sorted(p.hyperparameters.items())))
        if key not in cache:
            if _recording_dir(pytestconfig) is not None and "trace_steps" not in kwargs:
                # what `compare` needs to name the op that changed (reference/trace.py)
                from reference.trace import GOLDEN_TRACE_STEPS

                kwargs = dict(kwargs, trace_steps=range(min(GOLDEN_TRACE_STEPS, p.steps)))
            cache[key] = reference.run(variant_id, **kwargs)
        return cache[key]

    yield run
    _record_trajectories(pytestconfig, list(cache.values()))


# --- trajectory recording (tox: results/<env>/ for `python -m reference compare`) ---------------

def _recording_dir(config: pytest.Config):
    from pathlib import Path

    value = config.getoption("--record-trajectories")
    return None if value is None else Path(value)


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process; the controller empties the recording DIR of an earlier
    session's files (one per worker) before any run."""
    # Runs that name threads= get them; the rest use one thread (TES_THREADS: benchmarks/stability.py):
    # at these sizes 2 threads never help, and two xdist workers with 2 threads each on 2 cores
    # stall (benchmarks/bench_gate.py).
    from reference.golden import gate_threads

    try:
        torch.set_num_threads(gate_threads())
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    out = _recording_dir(config)
    if out is not None and not hasattr(config, "workerinput") and out.is_dir():
        for stale in [*out.glob("gw*.json"), *out.glob("main.json")]:
            stale.unlink()


def _record_trajectories(config: pytest.Config, trajectories: list) -> None:
    """One file per process (DIR/gw0.json, ... or DIR/main.json), written atomically."""
    out = _recording_dir(config)
    if out is None or not trajectories:
        return
    from reference.compare import save_results

    worker = config.workerinput["workerid"] if hasattr(config, "workerinput") else "main"
    save_results(out / f"{worker}.json", trajectories)


# --- golden report ---------------------------------------------------------------------------------

GOLDEN_PROPERTY = "golden_verdict"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    verdicts = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            verdicts += [value for name, value in getattr(report, "user_properties", []) if name == GOLDEN_PROPERTY]
    if verdicts:
        terminalreporter.section("golden comparisons")
        counts = {s: sum(v.split(": ", 1)[1].startswith(s) for v in verdicts) for s in ("exact", "close", "failed", "updated")}
        terminalreporter.write_line(", ".join(f"{n} {s}" for s, n in counts.items() if n))
        for line in sorted(verdicts):
            if ": exact" not in line:
                terminalreporter.write_line("  " + line)
    from reference.golden import unused_files

    stray = unused_files()
    if stray:
        terminalreporter.section("unused goldens")
        terminalreporter.write_line(
            "these golden files match no variant/dtype/seed of specs/golden_policy.toml; delete them or add them to the policy:"
        )
        for path in stray:
            terminalreporter.write_line(f"  {path}")
