"""The suite's pytest plugin: options, device/dtype parametrisation, CUDA policy, Hypothesis profiles.

Markers are declared in pyproject.toml (--strict-markers is on).
"""
from __future__ import annotations

import os

import pytest
import torch
# Imported here, once per process: an in-process pytester session that imported it first would drop
# it with its sys.modules snapshot, and torch cannot register its operator libraries a second time
# (every process runs an optimizer step, which imports it anyway).
import torch._dynamo  # noqa: F401
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
REQUIRE_COMPILE_ENV = "TES_REQUIRE_COMPILE"


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
        "--require-compile",
        action="store_true",
        default=os.environ.get(REQUIRE_COMPILE_ENV, "") not in ("", "0"),
        help=f"fail, instead of skipping, when compile tests are selected and a torch.compile backend "
        f"cannot run here (inductor without a C++ compiler) (also: {REQUIRE_COMPILE_ENV}=1)",
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


from reference.check import cuda_unavailable_reason  # noqa: E402 - one wording for pytest and `check`


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if config.getoption("--require-cuda") and not hasattr(config, "workerinput"):
        reason = cuda_unavailable_reason()
        if reason is not None:
            pytest.exit(f"--require-cuda: {reason}; the CUDA tests cannot run here.", returncode=3)
    if config.getoption("--require-compile") and not hasattr(config, "workerinput"):
        from reference.compiling import BACKENDS, unavailable_reason

        for backend in BACKENDS:
            reason = unavailable_reason(backend)
            if reason is not None:
                pytest.exit(f"--require-compile: {reason}; the {backend} tests cannot run here.", returncode=3)


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
    skip_compile = pytest.mark.skip(reason="compile: torch.compile runs are not in the default gate; run with -m compile")
    for item in items:
        if "slow" in item.keywords and "slow" not in markexpr:
            item.add_marker(skip_slow)
        if "compile" in item.keywords and "compile" not in markexpr:
            item.add_marker(skip_compile)


COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def compile_cache_dir(config: pytest.Config):
    """The suite's persistent inductor cache (FX graphs, AOTAutograd, compiled C++): a second
    `pytest -m compile` costs seconds a run instead of 20-35 s. A TORCHINDUCTOR_CACHE_DIR the user
    set wins."""
    from pathlib import Path

    return Path(config.rootpath) / ".pytest_cache" / "torchinductor"


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
               tuple(sorted(p.hyperparameters.items())), p.compile)
        if key not in cache:
            if _recording_dir(pytestconfig) is not None and "trace_steps" not in kwargs and p.compile is None:
                # what `compare` needs to name the op that changed (reference/trace.py); not for
                # compiled runs: dynamo does not compile under the trace's dispatch mode
                from reference.trace import GOLDEN_TRACE_STEPS

                kwargs = dict(kwargs, trace_steps=range(min(GOLDEN_TRACE_STEPS, p.steps)))
            cache[key] = reference.run(variant_id, **kwargs)
        return cache[key]

    yield run
    _record_trajectories(pytestconfig, list(cache.values()))


# --- trajectory recording (tox: results/<env>/ for `python -m reference compare`) ---------------

RECORDED_BY = "pytest --record-trajectories"  # marks the files this option writes


def _recording_dir(config: pytest.Config):
    from pathlib import Path

    value = config.getoption("--record-trajectories")
    return None if value is None else Path(os.path.expanduser(value))


def _written_by_recording(path) -> bool:
    """A results file of an earlier --record-trajectories session (its first bytes carry the mark)."""
    try:
        with open(path, "rb") as f:
            head = f.read(200).decode("utf-8", "replace")
    except OSError:
        return False
    return f'"recorded_by": "{RECORDED_BY}"' in head


def prepare_recording_dir(out) -> list:
    """Make `out` ready for a session's recording, before any run: created if need be, and emptied
    of an earlier session's files (only those: gw*.json / main.json carrying the mark). Any other
    results file there would be read by `compare` as part of this recording, so the directory is
    refused (pytest.UsageError), and nothing in it is touched. Returns the files removed."""
    if out.exists() and not out.is_dir():
        raise pytest.UsageError(f"--record-trajectories {out}: is a file, not a directory")
    ours, foreign = [], []
    if out.is_dir():
        for path in sorted(out.glob("*.json")):
            if path.name.startswith("."):
                continue
            is_ours = (path.name == "main.json" or path.name.startswith("gw")) and _written_by_recording(path)
            (ours if is_ours else foreign).append(path)
        if foreign:
            names = ", ".join(p.name for p in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise pytest.UsageError(
                f"--record-trajectories {out}: holds results files this option did not write ({names}); "
                "`compare` would mix them into the recording. Choose a new or empty directory, or move them."
            )
    from reference.files import unwritable_folder

    problem = unwritable_folder(out)
    if problem:
        raise pytest.UsageError(f"--record-trajectories {out}: {problem}")
    for path in ours:
        path.unlink()
    return ours


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process (TES_THREADS: benchmarks/stability.py); the controller
    prepares the recording DIR before any run; golden updates stop when the controller does."""
    # Runs that name threads= get them; the rest use gate_threads(): at these sizes 2 threads never
    # help, and two xdist workers with 2 threads each on 2 cores stall (benchmarks/bench_gate.py).
    from reference.golden import gate_threads

    try:
        torch.set_num_threads(gate_threads())
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    out = _recording_dir(config)
    if out is not None and not hasattr(config, "workerinput"):
        prepare_recording_dir(out)
    _stop_with_the_controller(config)


def _record_trajectories(config: pytest.Config, trajectories: list) -> None:
    """One file per process (DIR/gw0.json, ... or DIR/main.json), written atomically."""
    out = _recording_dir(config)
    if out is None or not trajectories:
        return
    from reference.compare import save_results

    worker = config.workerinput["workerid"] if hasattr(config, "workerinput") else "main"
    save_results(out / f"{worker}.json", trajectories, recorded_by=RECORDED_BY)


# --- stopping ---------------------------------------------------------------------------------------

def controller_gone(parent_pid: int) -> str | None:
    """Why a worker must stop (its controller, the process that started it, has exited), or None."""
    if os.getppid() != parent_pid:
        return f"the pytest controller (pid {parent_pid}) has stopped"
    return None


def _stop_with_the_controller(config: pytest.Config) -> None:
    """SIGTERM to the controller stops the session as Ctrl-C does (xdist then shuts its workers
    down); a worker whose controller has gone anyway (SIGKILL) writes no more goldens and runs no
    more tests."""
    import signal

    if hasattr(config, "workerinput"):
        from reference import golden

        parent = os.getppid()
        config._tes_controller_pid = parent  # type: ignore[attr-defined]
        golden.stop_writing_when(lambda: controller_gone(parent))
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def interrupt(signum, frame):
            raise KeyboardInterrupt(f"stopped by signal {signum}")

        signal.signal(signal.SIGTERM, interrupt)
        config.add_cleanup(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


def pytest_runtest_setup(item: pytest.Item) -> None:
    parent = getattr(item.config, "_tes_controller_pid", None)
    reason = None if parent is None else controller_gone(parent)
    if reason:
        pytest.exit(f"worker stopping: {reason}", returncode=2)
    if item.get_closest_marker("compile") is not None:
        os.environ.setdefault(COMPILE_CACHE_ENV, str(compile_cache_dir(item.config)))
    if item.get_closest_marker("cuda") is None:
        return
    reason = cuda_unavailable_reason()
    if reason is None:
        return
    if item.config.getoption("--require-cuda"):
        pytest.fail(f"--require-cuda: {reason}", pytrace=False)
    pytest.skip(reason)


# --- golden report ---------------------------------------------------------------------------------

GOLDEN_PROPERTY = "golden_verdict"
# the direct CUDA-vs-CPU comparisons ("device check: cuda:0 vs cpu, same torch ..., same start: <verdict>")
DEVICE_CHECK_PROPERTY = "device_check_verdict"


def _properties(terminalreporter, wanted: str) -> list[str]:
    values = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            values += [value for name, value in getattr(report, "user_properties", []) if name == wanted]
    return values


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    verdicts = _properties(terminalreporter, GOLDEN_PROPERTY)
    if verdicts:
        terminalreporter.section("golden comparisons")
        counts = {s: sum(v.split(": ", 1)[1].startswith(s) for v in verdicts) for s in ("exact", "close", "failed", "updated")}
        terminalreporter.write_line(", ".join(f"{n} {s}" for s, n in counts.items() if n))
        note = _golden_note(verdicts)
        if note:
            terminalreporter.write_line(note)
        for line in sorted(verdicts):
            if ": exact" not in line:
                terminalreporter.write_line("  " + line)
    checks = _properties(terminalreporter, DEVICE_CHECK_PROPERTY)
    if checks:
        terminalreporter.section("device checks: CUDA vs CPU from the same start, same torch")
        for line in sorted(checks):
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


def _golden_note(verdicts: list[str]) -> str | None:
    """On a GPU box the golden tests compare a CUDA run of this torch with CPU goldens of another:
    say so, so that a CUDA golden failure is not read as a device difference alone."""
    from reference.golden import recorded_torch_versions

    recorded = sorted(recorded_torch_versions())
    devices = sorted({v.split(" ")[1] for v in verdicts if len(v.split(" ")) > 1 and v.split(" ")[1] != "cpu"
                      and not v.split(" ")[1].endswith(":")})
    if not devices or recorded == [torch.__version__]:
        return None
    return (f"goldens recorded on torch {', '.join(recorded)}, cpu; this session: torch {torch.__version__} on "
            f"{', '.join(['cpu', *devices])}: the {', '.join(devices)} lines differ from their goldens in device "
            "and torch version both (the device checks compare the devices alone)")
