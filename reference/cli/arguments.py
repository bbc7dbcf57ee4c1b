"""What the commands share: turning flags into the arguments plan() judges, output files checked before
any work, seed lists, progress lines on stderr."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..catalogue import lookup
from ..errors import UsageError
from ..files import unwritable_folder
from ..harness.planning import resolve_hyperparameters

# `run` arguments that have their own flag: `--set steps=5` is pointed to `--steps 5`
RUN_FLAGS = {"steps": "--steps", "seed": "--seed", "device": "--device", "dtype": "--dtype",
             "threads": "--threads"}


def parse_override(text: str, variant_id: str) -> tuple[str, Any]:
    """NAME=VALUE of --set, converted to the hyperparameter's type and checked by the harness's rules."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--set expects NAME=VALUE, got {text!r}")
    if name in RUN_FLAGS:
        raise UsageError(f"--set {text}: {name} is not a hyperparameter; use {RUN_FLAGS[name]} {raw or 'VALUE'}")
    variant = lookup(variant_id)
    hp = variant.hyperparameters
    if name not in hp:
        valid = [k for k in hp if k != "steps"]
        raise UsageError(f"--set {text}: {variant_id} has no hyperparameter {name!r}. "
                         f"Valid choices: {', '.join(valid)}")
    default = hp.get(name)
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false"):
            raise UsageError(f"--set {name} expects true or false, got {raw!r}")
        return name, raw.lower() == "true"
    if isinstance(default, (int, float)):
        try:
            value = float(raw)
        except ValueError:
            raise UsageError(f"--set {name} expects a number, got {raw!r}") from None
        value = int(value) if isinstance(default, int) and value.is_integer() and abs(value) < 2**63 else value
    else:
        value = raw
    try:
        resolve_hyperparameters(variant, {name: value})
    except ValueError as exc:
        raise UsageError(f"--set {text}: {exc}") from None
    return name, value


def _is_read_only(path: Path) -> bool:
    mode = path.stat().st_mode
    return not mode & 0o200 or not os.access(path, os.W_OK)


def output_file(value: str, flag: str, *, overwrite: bool) -> Path:
    """The file `flag` names, checked before any work: not a directory, replaceable only with
    --overwrite and if writable, its directory created (or refused with the reason) and writable."""
    path = Path(os.path.expanduser(value))
    if value.endswith(("/", os.sep)) or path.is_dir():
        raise UsageError(f"{flag} {value}: is a directory; give a file name, e.g. {flag} "
                         f"{(value.rstrip('/' + os.sep) or '.')}/results.json")
    if path.exists():
        if not overwrite:
            raise UsageError(f"{flag} {value} exists; pass --overwrite to replace it")
        if _is_read_only(path):
            raise UsageError(f"{flag} {value} is read-only; not replaced (make it writable, or choose another file)")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{flag} {value}: {ancestor} is a file, not a directory")
    problem = unwritable_folder(path.parent)
    if problem:
        raise UsageError(f"{flag} {value}: {problem}")
    return path


def size_text(n: int) -> str:
    """A file size as people read it: 812 B, 4.2 KB, 3.1 MB."""
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class Progress:
    """A progress bar on stderr that an error line can interrupt cleanly."""

    def __init__(self) -> None:
        self.open = False  # a bar line awaits its newline

    def bar(self, done: int, total: int, label: str) -> None:
        width = 30
        filled = width * done // total
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<24}")
        self.open = done != total
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def end(self) -> None:
        """So that an error starts on a line of its own."""
        if self.open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.open = False


progress = Progress()
