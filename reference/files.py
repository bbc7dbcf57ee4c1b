"""Writing files safely: atomically, and never over an existing file unless asked.

Files are written as users expect: a new file gets the mode the umask gives (0644 under umask 022,
not mkstemp's 0600); a replaced file keeps its mode; a read-only file is refused, not replaced; the
data reach the disk (fsync) before the rename makes them visible.
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no other way to read it; set back at once
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every platform or file system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _error(kind: type[OSError], text: str) -> OSError:
    """An OSError whose message reads "<text>" (no errno or filename: str() would then read
    "[Errno N] ...: '<file>'")."""
    return kind(text)


def _renamed(exc: OSError, path: Path) -> OSError:
    """The same error, naming the target instead of the temporary file beside it."""
    if exc.errno is None:
        return exc
    reason = exc.strerror or os.strerror(exc.errno)
    return _error(type(exc), f"cannot write {path}: {reason}")


def _exists(path: Path) -> OSError:
    return _error(FileExistsError, f"{path} exists; pass overwrite=True to replace it")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], *, overwrite: bool = False) -> Path:
    """Call write(f) on a temporary file beside `path`, then move it into place.

    Without overwrite=True an existing `path` is left alone and FileExistsError is raised; the check
    and the move are one step (a hard link) where the file system allows it. With overwrite=True an
    existing `path` that is read-only raises PermissionError and is left alone; a writable one is
    replaced and keeps its mode. OSErrors name `path`, never the temporary file.
    """
    path = Path(path)
    if path.is_dir():
        raise _error(IsADirectoryError, f"{path} is a directory, not a file")
    existing_mode = None
    if path.exists():
        if not overwrite:
            raise _exists(path)
        existing_mode = stat.S_IMODE(path.stat().st_mode)
        if not existing_mode & stat.S_IWUSR or not os.access(path, os.W_OK):  # root ignores modes
            raise _error(PermissionError, f"{path} is read-only; not replaced (make it writable to update it)")
    mode = existing_mode if existing_mode is not None else 0o666 & ~current_umask()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _renamed(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise _exists(path) from None
            except OSError as exc:  # no hard links here: exclusive create, then copy
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                with open(path, "xb") as dst, open(tmp, "rb") as src:
                    dst.write(src.read())
                    dst.flush()
                    os.fsync(dst.fileno())
                os.chmod(path, mode)
        _fsync_directory(path.parent)
    except OSError as exc:
        raise _renamed(exc, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def unwritable_folder(folder: str | os.PathLike) -> str | None:
    """Why files cannot be written in `folder` (created if missing), or None: a probe file is made
    and removed, which also catches what permission bits do not say (read-only mounts, root)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot write in {folder} ({exc.strerror or exc})"
    return None
