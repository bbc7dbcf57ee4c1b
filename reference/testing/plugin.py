"""The suite's pytest plugin, loaded by the root conftest.py (`pytest_plugins`).

- options: --require-cuda, --require-compile, --update-goldens, --record-trajectories, --artifacts-dir;
- markers, registered here (the suite runs with --strict-markers): cpu, cuda, golden, property, mnist,
  slow, compile, and `dtypes(...)`, which narrows the dtypes a test is parametrised over;
- device / dtype parametrisation in PyTorch's device-generic style (ids end in `cpu_float64`);
- the CUDA and compile policies (skip saying why, or fail under --require-*);
- fixtures: `cached_run` (the session's runs, shared by the xdist workers), `shared_once` (any costly
  result, likewise), `golden` (golden.check), `artifacts_dir`, `one_thread`, `umask`;
- the session summary of golden comparisons and device checks;
- Hypothesis profiles (dev, ci under CI=true, thorough) and torch's generator registered with it.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, Phase, register_random, settings

from ..threads import gate_threads
from . import recording, runs, summary

if TYPE_CHECKING:
    from .goldens import Golden

REQUIRE_CUDA_ENV = "TES_REQUIRE_CUDA"
REQUIRE_COMPILE_ENV = "TES_REQUIRE_COMPILE"
COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
# what loads this plugin into a pytester session of the plugin's tests, by module name as the root
# conftest.py loads it (no cache: nothing written beside the test's files)
PYTESTER_ARGS = ("-p", __name__, "-p", "no:cacheprovider")

MARKERS = {
    "cpu": "runs on the CPU device",
    "cuda": "runs on a CUDA device (skipped without one; fails under --require-cuda)",
    "dtypes(*names)": "the torch dtypes a device/dtype-generic test runs in (default: float32 and float64)",
    "property": "a Hypothesis property of the tutorial's mathematics",
    "golden": "compares a run against a recorded golden trajectory",
    "mnist": "the MNIST classifier of blog-mnist-2021",
    "slow": "not part of the default gate (more seeds, more data, the thorough profile); run with -m slow",
    "compile": "runs through torch.compile (aot_eager, inductor); not in the default gate, run with -m compile "
               "(inductor skips without a C++ compiler; fails under --require-compile)",
}
OPT_IN = {  # markers whose tests run only when -m names them
    "slow": "slow: not in the default gate; run with -m slow",
    "compile": "compile: torch.compile runs are not in the default gate; run with -m compile",
}

# --- Hypothesis -------------------------------------------------------------------------------------


class _TorchGlobalRandom:
    """Lets Hypothesis seed and restore torch's global generator like it does `random`'s."""

    def seed(self, seed: int) -> None:
        import torch

        torch.manual_seed(seed)

    def getstate(self):
        import torch

        return torch.get_rng_state()

    def setstate(self, state) -> None:
        import torch

        torch.set_rng_state(state)


_torch_random = _TorchGlobalRandom()  # register_random holds a weak reference: keep this one alive

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, **_common)
settings.register_profile("ci", max_examples=25, derandomize=True, database=None, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=500, phases=list(Phase), **_common)
settings.load_profile("ci" if os.environ.get("CI", "").lower() not in ("", "0", "false") else "dev")

# --- options and configuration -------------------------------------------------------------------------


def _flag_from_env(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torch-examples-spec")
    group.addoption("--require-cuda", action="store_true", default=_flag_from_env(REQUIRE_CUDA_ENV),
                    help=f"fail, instead of skipping, when CUDA tests are selected and no GPU is usable "
                    f"(also: {REQUIRE_CUDA_ENV}=1)")
    group.addoption("--require-compile", action="store_true", default=_flag_from_env(REQUIRE_COMPILE_ENV),
                    help="fail, instead of skipping, when compile tests are selected and a torch.compile backend "
                    f"cannot run here (inductor without a C++ compiler) (also: {REQUIRE_COMPILE_ENV}=1)")
    group.addoption("--update-goldens", action="store_true", default=False,
                    help="rewrite the golden trajectories of the selected golden tests (never written otherwise)")
    group.addoption("--record-trajectories", default=None, metavar="DIR",
                    help="write the trajectories of the session's shared runs (cached_run) to DIR/<worker>.json "
                    "for `python -m reference compare` (tox does this per env)")
    group.addoption("--artifacts-dir", default=os.environ.get("TES_ARTIFACTS_DIR", "artifacts"),
                    help="where failing golden comparisons write their plots and reports (default: artifacts/)")


@pytest.hookimpl(tryfirst=True)  # before xdist's, which picks "load" when -n comes without --dist
def pytest_cmdline_main(config: pytest.Config) -> None:
    """`-n N` without --dist distributes by work stealing: each worker starts on its own half of the
    suite, so the two seldom wait for the same shared run (with "load", one worker of the gate spent
    16 s of its 87 s of tests waiting on runs the other was making: README, Speed)."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "worksteal"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _runs_tests(config: pytest.Config) -> bool:
    """False in pytest-xdist's controller, which only hands tests to its workers (the test xdist's
    own is_xdist_controller makes)."""
    return _is_worker(config) or config.getoption("dist", "no") == "no"


def _import_torch() -> None:
    """torch, once per test process, before any test: the xdist controller never pays for it (~7 s)."""
    import torch
    # Imported here: an in-process pytester session that imported it first would drop it with its
    # sys.modules snapshot, and torch cannot register its operator libraries a second time (every
    # process runs an optimizer step, which imports it anyway).
    import torch._dynamo  # noqa: F401

    torch.set_num_threads(gate_threads())
    register_random(_torch_random)


def pytest_configure(config: pytest.Config) -> None:
    """Markers; one torch thread per test process (TES_THREADS: benchmarks/stability.py); the
    controller prepares the recording DIR and the shared-runs folder before any run; golden updates
    stop when the controller does."""
    for marker, text in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
    # Runs that name threads= get them; the rest use gate_threads(): at these sizes 2 threads never
    # help, and two xdist workers with 2 threads each on 2 cores stall (benchmarks/bench_gate.py).
    try:
        gate_threads()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if _runs_tests(config):
        _import_torch()
    if _is_worker(config):
        folder = config.workerinput.get(runs.WORKER_INPUT_KEY)
        config._tes_runs_dir = None if folder is None else Path(folder)  # type: ignore[attr-defined]
    else:
        out = recording.recording_dir(config)
        if out is not None:
            recording.prepare_recording_dir(out)
        folder = runs.new_session_folder()
        config._tes_runs_dir = folder  # type: ignore[attr-defined]
        config.add_cleanup(lambda: runs.remove_session_folder(folder))
    _stop_with_the_controller(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker shares the controller's runs folder."""
    node.workerinput[runs.WORKER_INPUT_KEY] = str(node.config._tes_runs_dir)


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if _is_worker(config):
        return
    if config.getoption("--require-cuda"):
        from ..check import cuda_unavailable_reason

        reason = cuda_unavailable_reason()
        if reason is not None:
            pytest.exit(f"--require-cuda: {reason}; the CUDA tests cannot run here.", returncode=3)
    if config.getoption("--require-compile"):
        from ..compiling import BACKENDS, unavailable_reason

        for backend in BACKENDS:
            reason = unavailable_reason(backend)
            if reason is not None:
                pytest.exit(f"--require-compile: {reason}; the {backend} tests cannot run here.", returncode=3)


# --- device / dtype parametrisation (PyTorch device-generic style) -------------------------------------

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.cpu, id="cpu"),
    pytest.param("cuda", marks=pytest.mark.cuda, id="cuda"),
]
DTYPES = ("float32", "float64")


@pytest.hookimpl(trylast=True)  # after explicit parametrisation, so ids end in cpu_float64
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests asking for `device` and/or `dtype` get ids like `cpu_float64`, as in PyTorch; the
    `dtypes` marker narrows the dtypes, as PyTorch's @dtypes does."""
    names = [n for n in ("device", "dtype") if n in metafunc.fixturenames]
    if not names or any(n in _explicitly_parametrized(metafunc) for n in names):
        return
    dtypes = _dtypes(metafunc)
    if names == ["device"]:
        metafunc.parametrize("device", DEVICES)
    elif names == ["dtype"]:
        metafunc.parametrize("dtype", dtypes)
    else:
        combos = [pytest.param(d.values[0], dt, marks=d.marks, id=f"{d.id}_{dt}") for d in DEVICES for dt in dtypes]
        metafunc.parametrize("device,dtype", combos)


def _dtypes(metafunc: pytest.Metafunc) -> tuple[str, ...]:
    mark = metafunc.definition.get_closest_marker("dtypes")
    if mark is None:
        return DTYPES
    import torch

    unknown = [d for d in mark.args if not isinstance(d, str) or not isinstance(getattr(torch, d, None), torch.dtype)]
    if not mark.args or unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.dtypes{mark.args}: "
                                f"{', '.join(map(repr, unknown)) or 'nothing'} named; name torch dtypes, e.g. "
                                f"{', '.join(DTYPES)}, float16, bfloat16, int64")
    return tuple(mark.args)


def _explicitly_parametrized(metafunc: pytest.Metafunc) -> set[str]:
    names: set[str] = set()
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0]
        names.update(n.strip() for n in (argnames.split(",") if isinstance(argnames, str) else argnames))
    return names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markexpr = config.getoption("-m") or ""
    for marker, reason in OPT_IN.items():
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if marker in item.keywords and marker not in markexpr:
                item.add_marker(skip)


def compile_cache_dir(config: pytest.Config) -> Path:
    """The suite's persistent inductor cache (FX graphs, AOTAutograd, compiled C++): a second
    `pytest -m compile` costs seconds a run instead of 20-35 s. A TORCHINDUCTOR_CACHE_DIR the user
    set wins."""
    return Path(config.rootpath) / ".pytest_cache" / "torchinductor"


def pytest_runtest_setup(item: pytest.Item) -> None:
    parent = getattr(item.config, "_tes_controller_pid", None)
    reason = None if parent is None else controller_gone(parent)
    if reason:
        pytest.exit(f"worker stopping: {reason}", returncode=2)
    if item.get_closest_marker("compile") is not None:
        os.environ.setdefault(COMPILE_CACHE_ENV, str(compile_cache_dir(item.config)))
    if item.get_closest_marker("cuda") is None:
        return
    from ..check import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is None:
        return
    if item.config.getoption("--require-cuda"):
        pytest.fail(f"--require-cuda: {reason}", pytrace=False)
    pytest.skip(reason)


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """One torch thread and one NumPy BLAS thread for what a test computes itself, as its runs use
    (reference.harness.thread_count: See Note [NumPy's BLAS threads]). Modules take it with
    `pytestmark = [..., pytest.mark.usefixtures("one_thread")]`."""
    from ..harness import thread_count

    with thread_count(1):
        yield


@pytest.fixture
def umask():
    """umask(mask) sets the process umask for one test; restored after."""
    before = os.umask(0o022)
    os.umask(before)
    yield lambda mask: os.umask(mask)
    os.umask(before)


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.getoption("--artifacts-dir"))


@pytest.fixture(scope="session")
def _session_shared(pytestconfig: pytest.Config) -> runs.SharedRuns:
    from ..harness import execute

    return runs.SharedRuns(pytestconfig._tes_runs_dir, lambda p, steps: execute(p, trace_steps=steps))


@pytest.fixture(scope="session")
def cached_run(pytestconfig: pytest.Config, _session_shared: runs.SharedRuns):
    """reference.run, each distinct run made once per session and shared by the xdist workers
    (reference/testing/runs.py): tests that need the same canonical trajectory share one run.
    Tests of determinism, and runs under an injection (refused here), call reference.run directly.
    With --record-trajectories DIR, the runs this process used are written to DIR at the end."""
    from .. import injections
    from ..harness import plan

    recording_on = recording.recording_dir(pytestconfig) is not None

    def run(variant_id: str, *, trace_steps=None, **arguments):
        changed = injections.active()
        if changed:  # a changed program must not be judged by, nor leave, the program's own run
            raise RuntimeError(f"cached_run({variant_id!r}) under the injection {', '.join(changed)}: the shared "
                               f"runs are the unchanged program's. Call reference.run inside the injection instead")
        p = plan(variant_id, **arguments)  # resolved: equal runs spelled differently share one
        if trace_steps is None and recording_on and p.compile is None:
            # what `compare` needs to name the op that changed (reference/trace.py); not for
            # compiled runs: dynamo does not compile under the trace's dispatch mode
            from ..trace import GOLDEN_TRACE_STEPS

            trace_steps = range(min(GOLDEN_TRACE_STEPS, p.steps))
        return _session_shared.get(p, None if trace_steps is None else tuple(trace_steps))

    yield run
    recording.record_trajectories(pytestconfig, _session_shared.used())


@pytest.fixture(scope="session")
def shared_once(_session_shared: runs.SharedRuns):
    """shared_once(name, compute): compute()'s picklable result, computed once per session by one
    xdist worker and read by the others (for a costly fixture several workers' tests need)."""
    return _session_shared.once


@pytest.fixture
def golden(request: pytest.FixtureRequest, cached_run, artifacts_dir: Path) -> Golden:
    """golden.check(GoldenKey(variant, dtype, seed), device=...): run, judge against the golden under
    the policy, fail with the golden report; --update-goldens rewrites it instead."""
    from .goldens import Golden

    return Golden(request, cached_run, artifacts_dir)


# --- stopping ------------------------------------------------------------------------------------------


def controller_gone(parent_pid: int) -> str | None:
    """Why a worker must stop (its controller, the process that started it, has exited), or None."""
    if os.getppid() != parent_pid:
        return f"the pytest controller (pid {parent_pid}) has stopped"
    return None


def _stop_with_the_controller(config: pytest.Config) -> None:
    """SIGTERM to the controller stops the session as Ctrl-C does (xdist then shuts its workers
    down); a worker whose controller has gone anyway (SIGKILL) writes no more goldens and runs no
    more tests."""
    if _is_worker(config):
        from .. import golden

        parent = os.getppid()
        config._tes_controller_pid = parent  # type: ignore[attr-defined]
        golden.stop_writing_when(lambda: controller_gone(parent))
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def interrupt(signum, frame):
            raise KeyboardInterrupt(f"stopped by signal {signum}")

        signal.signal(signal.SIGTERM, interrupt)
        config.add_cleanup(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


# --- the session summary -------------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    results = summary.golden_results(terminalreporter)
    if results:
        terminalreporter.section("golden comparisons")
        for line in summary.summary_lines(results):
            terminalreporter.write_line(line)
    checks = summary.session_properties(terminalreporter, summary.DEVICE_CHECK_PROPERTY)
    if checks:
        terminalreporter.section("device checks: CUDA vs CPU from the same start, same torch")
        for line in sorted(checks):
            terminalreporter.write_line("  " + line)
