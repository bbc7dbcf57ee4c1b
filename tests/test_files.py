"""reference.files.atomic_write, which every file the project writes goes through (goldens, `run
--out`, recordings, checkpoints, IDX files): written as users expect."""
from __future__ import annotations

import os
import stat

import pytest

from reference import files
from reference.files import atomic_write


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_the_umask_gives_not_0600(tmp_path, umask, mask, expected):
    umask(mask)
    assert files.current_umask() == mask
    path = atomic_write(tmp_path / "new.json", lambda f: f.write(b"{}"))
    assert mode(path) == expected


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "kept.json"
    path.write_bytes(b"old")
    path.chmod(0o600)
    atomic_write(path, lambda f: f.write(b"new"), overwrite=True)
    assert path.read_bytes() == b"new" and mode(path) == 0o600


def test_a_read_only_file_is_refused_not_replaced(tmp_path):
    path = tmp_path / "golden.json"
    path.write_bytes(b"reviewed")
    path.chmod(0o444)
    with pytest.raises(PermissionError, match=r"golden.json is read-only; not replaced"):
        atomic_write(path, lambda f: f.write(b"new"), overwrite=True)
    assert path.read_bytes() == b"reviewed" and mode(path) == 0o444
    assert [p.name for p in tmp_path.iterdir()] == ["golden.json"]


def test_the_data_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic_write(tmp_path / "f.json", lambda f: f.write(b"data"), overwrite=True)
    assert events[:2] == ["fsync", "replace"]


def test_errors_name_the_target_not_the_temporary_file_and_leave_nothing(tmp_path):
    def disk_full(f):
        raise OSError(28, "No space left on device")

    target = tmp_path / "model.pth"
    with pytest.raises(OSError) as info:
        atomic_write(target, disk_full)
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_a_directory_is_not_written_over(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory, not a file"):
        atomic_write(tmp_path / "results", lambda f: f.write(b"x"), overwrite=True)
