"""The test session's state and policies, in one object the plugin's hooks hand off to (as
pytest-regressions and syrupy keep theirs): options, the runs folder the xdist workers share, the
recording directory, the CUDA and compile policies, stopping with the controller, the summary.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from ..harness.threads import gate_threads
from . import recording, runs, summary

REQUIRE_CUDA_ENV = "TES_REQUIRE_CUDA"
REQUIRE_COMPILE_ENV = "TES_REQUIRE_COMPILE"
COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"

MARKERS = {
    "cpu": "runs on the CPU device",
    "cuda": "runs on a CUDA device (skipped without one; fails under --require-cuda)",
    "dtypes(*names)": "the torch dtypes a device/dtype-generic test runs in (default: float32 and float64)",
    "property": "a Hypothesis property of the tutorial's mathematics",
    "golden": "compares a run against a recorded golden trajectory",
    "mnist": "the MNIST classifier of blog-mnist-2021",
    "environment": "asserts about what the process environment says (kept hermetic: "
                   "tests/test_hermetic.py runs these under every CI rotation configuration)",
    "slow": "not part of the default gate (more seeds, more data, the thorough profile); run with -m slow",
    "compile": "runs through torch.compile (aot_eager, inductor); not in the default gate, run with -m compile "
               "(inductor skips without a C++ compiler; fails under --require-compile)",
    "bisect": "installs torch releases into environments of its own (network, minutes, GBs); run with -m bisect",
}
OPT_IN = {  # markers whose tests run only when -m names them
    "slow": "slow: not in the default gate; run with -m slow",
    "compile": "compile: torch.compile runs are not in the default gate; run with -m compile",
    "bisect": "bisect: installs torch releases (network, minutes); run with -m bisect",
}
_KEY = pytest.StashKey["TestSession"]()


def flag_from_env(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def controller_gone(parent_pid: int) -> str | None:
    """Why a worker must stop (its controller, the process that started it, has exited), or None."""
    if os.getppid() != parent_pid:
        return f"the pytest controller (pid {parent_pid}) has stopped"
    return None


class TestSession:
    """One per pytest process: the controller's, or an xdist worker's."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, config: pytest.Config):
        self.config = config
        self.runs_dir: Path | None = None
        self.controller_pid: int | None = None
        self._expectation_sets: list | None = None
        self._choices: dict[str, Any] = {}
        self._kept: dict[str, list] = {}  # device -> [[run, repeat], ...] for --record-expectations

    @classmethod
    def of(cls, config: pytest.Config) -> "TestSession":
        return config.stash[_KEY]

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @property
    def runs_tests(self) -> bool:
        """False in pytest-xdist's controller, which only hands tests to its workers."""
        return self.is_worker or self.config.getoption("dist", "no") == "no"

    # --- configure -----------------------------------------------------------------------------------

    def configure(self) -> None:
        """Markers; one torch thread per test process (TES_THREADS); the controller prepares the
        recording directory and the runs folder before any run; a worker stops with its controller."""
        self.config.stash[_KEY] = self
        for marker, text in MARKERS.items():
            self.config.addinivalue_line("markers", f"{marker}: {text}")
        try:
            threads = gate_threads()
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        if self.runs_tests:
            _import_torch(threads)
        if self.is_worker:
            folder = self.config.workerinput.get(runs.WORKER_INPUT_KEY)
            self.runs_dir = None if folder is None else Path(folder)
            self.controller_pid = os.getppid()
            return
        out = recording.recording_dir(self.config)
        if out is not None:
            recording.prepare_recording_dir(out)
        folder = runs.new_session_folder()
        self.runs_dir = folder
        self.config.add_cleanup(lambda: runs.remove_session_folder(folder))
        self._interrupt_on_sigterm()

    def _interrupt_on_sigterm(self) -> None:
        """SIGTERM to the controller stops the session as Ctrl-C does (xdist then shuts its workers down)."""
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            def interrupt(signum, frame):
                raise KeyboardInterrupt(f"stopped by signal {signum}")

            signal.signal(signal.SIGTERM, interrupt)
            self.config.add_cleanup(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))

    def stop_reason(self) -> str | None:
        """Why this process must run no more tests and write no more goldens (its controller is gone)."""
        return None if self.controller_pid is None else controller_gone(self.controller_pid)

    # --- expectations per environment (reference/judge/expectations.py) -------------------------------

    @property
    def records_expectations(self) -> bool:
        return self.config.getoption("--record-expectations") is not None

    @property
    def keeps_expectation_runs(self) -> bool:
        return self.records_expectations or bool(self.config.getoption("--expect"))

    def expectation_for(self, device: str) -> Any:
        """The Choice of an expectation set for `device` (None without --expect)."""
        dirs = self.config.getoption("--expect")
        if not dirs:
            return None
        from ..harness.environment import describe
        from ..judge import expectations

        if self._expectation_sets is None:
            try:
                self._expectation_sets = [expectations.load(Path(d)) for d in dirs]
            except expectations.ExpectationError as exc:
                pytest.exit(f"--expect: {exc}", returncode=4)
        if device not in self._choices:
            self._choices[device] = expectations.choose(self._expectation_sets, device,
                                                        {**describe(device), "threads": gate_threads()})
        return self._choices[device]

    def keep_for_expectations(self, device: str, run: Any, runner: Any) -> None:
        """A golden run, and one repeat of it (is this box bitwise repeatable?), for the set."""
        again = runner(run.variant, seed=run.seed, dtype=run.dtype, device=device, steps=run.steps,
                       threads=run.threads)
        self._kept.setdefault(device, []).append([run, again])

    def finish(self) -> None:
        """Each process leaves its kept runs in DIR/.parts; the controller (or a lone process) writes the set."""
        out = self.config.getoption("--record-expectations")
        if out is None:
            return
        import pickle

        parts = Path(out) / ".parts"
        parts.mkdir(parents=True, exist_ok=True)
        name = self.config.workerinput["workerid"] if self.is_worker else "main"
        if self._kept:
            (parts / f"{name}.pickle").write_bytes(pickle.dumps(self._kept))
        if self.is_worker:
            return
        from ..judge import expectations

        merged: dict[str, list] = {}
        for part in sorted(parts.glob("*.pickle")):
            for device, groups in pickle.loads(part.read_bytes()).items():
                merged.setdefault(device, []).extend(groups)
            part.unlink()
        parts.rmdir()
        if merged:
            expectations.record(Path(out), merged, repeats=2, overwrite=True)

    # --- the session's policies ------------------------------------------------------------------------

    def start(self) -> None:
        if self.is_worker:
            return
        if self.config.getoption("--require-cuda"):
            from ..harness.planning import cuda_unavailable_reason

            reason = cuda_unavailable_reason()
            if reason is not None:
                pytest.exit(f"--require-cuda: {reason}; the CUDA tests cannot run here.", returncode=3)
        if self.config.getoption("--require-compile"):
            from ..harness.compiling import BACKENDS, unavailable_reason

            for backend in BACKENDS:
                reason = unavailable_reason(backend)
                if reason is not None:
                    pytest.exit(f"--require-compile: {reason}; the {backend} tests cannot run here.", returncode=3)

    def deselect_opt_in(self, items: list[pytest.Item]) -> None:
        markexpr = self.config.getoption("-m") or ""
        for marker, reason in OPT_IN.items():
            skip = pytest.mark.skip(reason=reason)
            for item in items:
                if marker in item.keywords and marker not in markexpr:
                    item.add_marker(skip)

    def setup(self, item: pytest.Item) -> None:
        reason = self.stop_reason()
        if reason:
            pytest.exit(f"worker stopping: {reason}", returncode=2)
        if item.get_closest_marker("compile") is not None:
            os.environ.setdefault(COMPILE_CACHE_ENV, str(Path(self.config.rootpath) / ".pytest_cache" / "torchinductor"))
        if item.get_closest_marker("cuda") is None:
            return
        from ..harness.planning import cuda_unavailable_reason

        reason = cuda_unavailable_reason()
        if reason is None:
            return
        if self.config.getoption("--require-cuda"):
            pytest.fail(f"--require-cuda: {reason}", pytrace=False)
        pytest.skip(reason)

    def terminal_summary(self, reporter: Any) -> None:
        for title, lines in summary.sections(reporter):
            reporter.section(title)
            for line in lines:
                reporter.write_line(line)


def _import_torch(threads: int) -> None:
    """torch, once per test process, before any test: the xdist controller never pays for it (~7 s)."""
    import torch

    from ..private import preload_dynamo
    from .hypothesis_profiles import register_torch_random

    preload_dynamo()  # here, before any in-process pytester session could import it first

    torch.set_num_threads(threads)
    register_torch_random()
