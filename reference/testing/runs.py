"""The session's runs, made once and shared by every xdist worker.

Many tests need the same canonical trajectory (a golden test, a convergence claim, a printed loss,
the compare recording). Each distinct run is made once per session: the first worker to ask takes
a lock on its key, runs it and writes the result to the session's folder; a worker asking for the
same run meanwhile waits on the lock and reads the file. The folder belongs to one session (the
controller makes it, hands it to its workers, and removes it at the end), so a changed program is
never judged by a run of the previous code.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # the xdist controller makes the folder and imports no torch
    from ..harness.planning import Plan
    from ..harness.trajectory import Trajectory

WORKER_INPUT_KEY = "tes_runs_dir"

try:  # POSIX: whole-file locks between worker processes
    import fcntl
except ModuleNotFoundError:  # Windows: each worker makes its own runs (correct, only slower)
    fcntl = None


def plan_digest(p: Plan, options: Any = None) -> str:
    """A file name for a run: the plan's key (plans compare equal when they make the same run) and
    what is recorded of it (traced steps, state fingerprints)."""
    return hashlib.sha256(repr((p.key(), options)).encode()).hexdigest()[:32]


class SharedRuns:
    """reference.run (and any computation named to once()) memoised in memory, and on disk across the
    processes given the same folder."""

    def __init__(self, folder: Path | None, execute: Callable[[Plan, Any], Trajectory]):
        self.folder = folder
        self._execute = execute
        self._memory: dict[str, Trajectory] = {}
        self._results: dict[str, Any] = {}  # once()'s
        self.made: list[Trajectory] = []  # runs this process made (the rest it read or reused)

    def get(self, p: Plan, options: Any = (None, False)) -> Trajectory:
        """The run of `p`; options: what execute records of it, (trace_steps, record_state)."""
        digest = plan_digest(p, options)
        if digest not in self._memory:
            self._memory[digest] = self._shared(digest, lambda: self._make(p, options))
        return self._memory[digest]

    def once(self, name: str, compute: Callable[[], Any]) -> Any:
        """compute()'s picklable result, computed by one process of the session under this name."""
        digest = "result-" + hashlib.sha256(name.encode()).hexdigest()[:32]
        if digest not in self._results:
            self._results[digest] = self._shared(digest, compute)
        return self._results[digest]

    def used(self) -> list[Trajectory]:
        return list(self._memory.values())

    def _make(self, p: Plan, options: Any) -> Trajectory:
        result = self._execute(p, options)
        self.made.append(result)
        return result

    def _shared(self, digest: str, compute: Callable[[], Any]) -> Any:
        if self.folder is None or fcntl is None:
            return compute()
        result_path = self.folder / f"{digest}.pickle"
        with open(self.folder / f"{digest}.lock", "ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if compute raises
            if result_path.exists():
                with open(result_path, "rb") as f:
                    return pickle.load(f)
            result = compute()
            partial = result_path.with_suffix(".partial")
            with open(partial, "wb") as f:
                pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(partial, result_path)
            return result


def new_session_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="tes-runs-"))


def remove_session_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
