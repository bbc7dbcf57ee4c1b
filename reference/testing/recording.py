"""`pytest --record-trajectories DIR`: the runs a session made, for `python -m reference compare`
(tox writes results/<env>/ per torch version)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

RECORDED_BY = "pytest --record-trajectories"  # marks the files this option writes


def recording_dir(config: pytest.Config) -> Path | None:
    value = config.getoption("--record-trajectories")
    return None if value is None else Path(os.path.expanduser(value))


def _written_by_recording(path: Path) -> bool:
    """A results file of an earlier --record-trajectories session (its first bytes carry the mark)."""
    try:
        with open(path, "rb") as f:
            head = f.read(200).decode("utf-8", "replace")
    except OSError:
        return False
    return f'"recorded_by": "{RECORDED_BY}"' in head


def prepare_recording_dir(out: Path) -> list[Path]:
    """Make `out` ready for a session's recording, before any run: created if need be, and emptied
    of an earlier session's files (only those: gw*.json / main.json carrying the mark). Any other
    results file there would be read by `compare` as part of this recording, so the directory is
    refused (pytest.UsageError), and nothing in it is touched. Returns the files removed."""
    if out.exists() and not out.is_dir():
        raise pytest.UsageError(f"--record-trajectories {out}: is a file, not a directory")
    ours: list[Path] = []
    if out.is_dir():
        foreign = []
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
    from ..files import unwritable_folder

    problem = unwritable_folder(out)
    if problem:
        raise pytest.UsageError(f"--record-trajectories {out}: {problem}")
    for path in ours:
        path.unlink()
    return ours


def record_trajectories(config: pytest.Config, trajectories: list) -> None:
    """One file per process (DIR/gw0.json, ... or DIR/main.json), written atomically."""
    out = recording_dir(config)
    if out is None or not trajectories:
        return
    from ..harness.trajectory import save_trajectories
    from ..judge.locate import record_departures

    worker = config.workerinput["workerid"] if hasattr(config, "workerinput") else "main"
    # runs that part from their golden keep the trace of where they part, so that compare can name the op
    save_trajectories(out / f"{worker}.json", record_departures(trajectories), recorded_by=RECORDED_BY)
