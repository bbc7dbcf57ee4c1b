"""Writing files safely: atomically, and never over an existing file unless asked."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], *, overwrite: bool = False) -> Path:
    """Call write(f) on a temporary file beside `path`, then move it into place.

    Without overwrite=True an existing `path` is left alone and FileExistsError is raised; the check
    and the move are one step (a hard link) where the file system allows it.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path} exists; pass overwrite=True to replace it") from None
            except OSError as exc:  # no hard links here: exclusive create, then copy
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                with open(path, "xb") as dst, open(tmp, "rb") as src:
                    dst.write(src.read())
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
