"""The suite's fixtures (loaded by reference/testing/plugin.py):

- `cached_run`: reference.run, each distinct run made once per session and shared by the xdist
  workers (runs.py); with --record-trajectories the runs a process used are written at the end;
- `shared_once(name, compute)`: any costly picklable result, likewise;
- `golden`: golden.check(key, device=...) (goldens.py);
- `artifacts_dir`, `one_thread`, `umask`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import recording, runs
from .session import TestSession

if TYPE_CHECKING:
    from .goldens import Golden


@pytest.fixture
def one_thread():
    """One torch thread and one NumPy BLAS thread for what a test computes itself, as its runs use
    (reference.harness.thread_count: See Note [NumPy's BLAS threads]). Modules take it with
    `pytestmark = [..., pytest.mark.usefixtures("one_thread")]`."""
    from ..harness.running import thread_count

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
    from ..harness.running import execute

    return runs.SharedRuns(TestSession.of(pytestconfig).runs_dir,
                           lambda p, options: execute(p, trace_steps=options[0], record_state=options[1]))


@pytest.fixture(scope="session")
def cached_run(pytestconfig: pytest.Config, _session_shared: runs.SharedRuns):
    """reference.run, each distinct run made once per session and shared by the xdist workers: tests
    that need the same canonical trajectory share one run. Tests of determinism, and runs under an
    injection (refused here), call reference.run directly. With --record-trajectories DIR, the runs
    this process used are written to DIR at the end (with their first steps' op traces and state
    fingerprints, so that `compare` can name where two recordings part)."""
    from .. import injections
    from ..harness.planning import plan
    from ..judge.rules import trace_steps as kept_trace_steps

    recording_on = recording.recording_dir(pytestconfig) is not None

    def run(variant_id: str, *, trace_steps=None, record_state: bool = False, **arguments):
        changed = injections.active()
        if changed:  # a changed program must not be judged by, nor leave, the program's own run
            raise RuntimeError(f"cached_run({variant_id!r}) under the injection {', '.join(changed)}: the shared "
                               f"runs are the unchanged program's. Call reference.run inside the injection instead")
        p = plan(variant_id, **arguments)  # resolved: equal runs spelled differently share one
        if recording_on and p.compile is None:
            # what `compare` needs to name where two recordings part (reference/judge/locate.py); not
            # for compiled runs: dynamo does not compile under the trace's dispatch mode
            trace_steps = range(min(kept_trace_steps(), p.steps)) if trace_steps is None else trace_steps
            record_state = True
        return _session_shared.get(p, (None if trace_steps is None else tuple(trace_steps), record_state))

    yield run
    recording.record_trajectories(pytestconfig, _session_shared.used())


@pytest.fixture(scope="session")
def shared_once(_session_shared: runs.SharedRuns):
    """shared_once(name, compute): compute()'s picklable result, computed once per session by one
    xdist worker and read by the others (for a costly fixture several workers' tests need)."""
    return _session_shared.once


@pytest.fixture
def golden(request: pytest.FixtureRequest, cached_run, artifacts_dir: Path) -> "Golden":
    """golden.check(GoldenKey(variant, dtype, seed), device=...): run, judge against the golden under
    the policy, fail with the golden report; --update-goldens rewrites it where it differs instead."""
    from .goldens import Golden

    return Golden(request, cached_run, artifacts_dir)
