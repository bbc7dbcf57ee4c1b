"""The environments a bisect runs in: one isolated environment per torch release (made with uv where it is
on PATH, else venv + pip; cached in the user's cache directory and reused), or interpreters the user
already has (--python; nothing installed). This package goes in by path (PYTHONPATH), never by an
install that could replace the release's torch; everything else is held fixed: the same NumPy,
scikit-learn, threadpoolctl and packaging as this environment's where the release accepts them, one
thread, the same environment variables. A release that forces another NumPy is installed with the
one it forces, and the boundary names it (env_changed).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version as installed_version
from pathlib import Path
from typing import Callable, Sequence

from packaging.version import InvalidVersion, Version

from ..harness.trajectory import Trajectory, read_trajectories
from ..trace import loads as load_trace
from .search import Unavailable

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent  # the directory holding `reference`
HELD = ("numpy", "scikit-learn", "threadpoolctl", "packaging")  # held at this environment's versions


def cache_dir() -> Path:
    """$TES_CACHE_DIR, else the user's cache directory (XDG_CACHE_HOME or ~/.cache) / torch-examples-spec."""
    root = os.environ.get("TES_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                           os.path.expanduser("~/.cache"), "torch-examples-spec")
    return Path(root)


def check_cache() -> Path:
    """The cache directory, made if need be; ValueError in one line when it cannot be written."""
    from ..files import unwritable_folder

    root = cache_dir() / "bisect"
    problem = unwritable_folder(root)
    if problem:
        raise ValueError(f"the bisect cache cannot be written: {problem}; set TES_CACHE_DIR to a writable directory")
    return root


def held_versions() -> dict[str, str]:
    out = {}
    for name in HELD:
        try:
            out[name] = installed_version(name)
        except PackageNotFoundError:
            continue
    return out


def available_releases(index_url: str | None = None, pre: bool = False) -> list[str]:
    """torch's releases on the index the user's installer is set up with (or `index_url`), oldest first."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", "torch", "--disable-pip-version-check"]
    if index_url:
        cmd += ["--index-url", index_url]
    if pre:
        cmd.append("--pre")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValueError(f"no package index reachable ({exc}); name the releases with --versions V1,V2,... or the "
                         "interpreters with --python") from None
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("Available versions:")), None)
    if proc.returncode != 0 or line is None:
        raise ValueError(f"no package index reachable to list torch's releases ({(proc.stderr or proc.stdout).strip()[-200:]}); "
                         "name the releases with --versions V1,V2,... or the interpreters with --python")
    releases = set()
    for v in line.split(":", 1)[1].split(","):
        try:
            releases.add(Version(Version(v.strip()).public))  # 2.13.0+cpu and 2.13.0: one release, 2.13.0
        except InvalidVersion:
            continue
    return [str(v) for v in sorted(releases)]


class Release:
    """A torch release in an environment of its own (made once, then reused)."""

    def __init__(self, version: str, *, installer: str = "auto", index_url: str | None = None,
                 progress: Callable[[str], None] = lambda line: None, threads: int = 1):
        self.version = version
        self.label = version
        self.installer = installer
        self.index_url = index_url
        self.progress = progress
        self.threads = threads
        tag = f"py{sys.version_info.major}.{sys.version_info.minor}"
        self.root = cache_dir() / "bisect" / tag / f"torch-{version}"
        self.python = self.root / "bin" / "python"

    # -- making the environment
    def _installer(self) -> str:
        if self.installer == "auto":
            return "uv" if shutil.which("uv") else "pip"
        return self.installer

    def _install(self, packages: list[str]) -> subprocess.CompletedProcess:
        if self._installer() == "uv":
            cmd = ["uv", "pip", "install", "--python", str(self.python), *packages]
        else:
            cmd = [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *packages]
        if self.index_url:
            cmd += ["--index-url", self.index_url]
        return subprocess.run(cmd, capture_output=True, text=True)

    def ensure(self) -> None:
        marker = self.root / ".complete"
        if marker.is_file():
            return
        check_cache()
        if self.root.exists():  # an install that died halfway: start it again
            shutil.rmtree(self.root)
        self.progress(f"bisect: making an environment for torch {self.version} in {self.root} (minutes: a CUDA build "
                      "is several GB)")
        if self._installer() == "uv":
            made = subprocess.run(["uv", "venv", "--python", sys.executable, str(self.root)], capture_output=True, text=True)
        else:
            made = subprocess.run([sys.executable, "-m", "venv", str(self.root)], capture_output=True, text=True)
        if made.returncode != 0:
            raise ValueError(f"cannot make an environment in {self.root}: {made.stderr.strip()[-300:]}")
        held = held_versions()
        pinned = [f"torch=={self.version}", *(f"{k}=={v}" for k, v in held.items())]
        got = self._install(pinned)
        if got.returncode != 0:  # the release may force another NumPy: held where it can be, named where not
            loose = [f"torch=={self.version}", *(f"{k}=={v}" for k, v in held.items() if k != "numpy"), "numpy"]
            got = self._install(loose)
        if got.returncode != 0:
            shutil.rmtree(self.root, ignore_errors=True)
            reason = (got.stderr or got.stdout).strip().splitlines()
            raise Unavailable(f"torch {self.version} cannot be installed for Python {sys.version_info.major}."
                              f"{sys.version_info.minor} here: {reason[-1] if reason else 'the installer failed'}")
        marker.write_text(json.dumps({"torch": self.version, "held": held}))

    # -- running in it
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
        env.pop("TES_THREADS", None)
        return env

    def _call(self, args: Sequence[str]) -> subprocess.CompletedProcess:
        self.ensure()
        return subprocess.run([str(self.python), "-m", "reference.bisect.worker", *args], capture_output=True,
                              text=True, env=self._env())

    def record(self, targets: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Trajectory]:
        self.ensure()
        out = self.root / "runs" / (_targets_key(targets) + ".json")
        if not out.is_file():  # a resumed bisect reuses what an earlier one ran
            out.parent.mkdir(parents=True, exist_ok=True)
            proc = self._call(["record", "--out", str(out), "--threads", str(self.threads),
                               *[f"{v}:{d}" for v, d in targets]])
            if proc.returncode != 0:
                raise Unavailable(f"the runs failed in torch {self.version}: {proc.stderr.strip()[-300:]}")
        return {(t.variant, t.dtype): t for t, _ in read_trajectories(out)}

    def locate(self, variant: str, dtype: str, step: int, against: dict | None) -> tuple[dict, str | None]:
        with tempfile.TemporaryDirectory() as tmp:
            trace_path, against_path = Path(tmp) / "trace.json", Path(tmp) / "against.json"
            args = ["locate", variant, dtype, str(step), "--out", str(trace_path), "--threads", str(self.threads)]
            if against is not None:
                from ..trace import dumps

                against_path.write_text(dumps(against))
                args += ["--against", str(against_path)]
            proc = self._call(args)
            if proc.returncode != 0:
                raise Unavailable(f"tracing failed in torch {self.version}: {proc.stderr.strip()[-300:]}")
            return load_trace(trace_path.read_text()), (proc.stdout.strip() or None)


class Interpreter(Release):
    """An interpreter the user already has (a container, a local build, a nightly): nothing installed."""

    def __init__(self, path: str, *, progress: Callable[[str], None] = lambda line: None, threads: int = 1):
        super().__init__(path, progress=progress, threads=threads)
        self.python = Path(path)
        self.label = path
        probe = subprocess.run([path, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True,
                               env=self._env()) if Path(path).exists() else None
        if probe is None or probe.returncode != 0:
            raise ValueError(f"--python {path}: not an interpreter with torch "
                             f"({'no such file' if probe is None else probe.stderr.strip()[-200:]})")
        self.version = probe.stdout.strip()
        self.label = f"{path} (torch {self.version})"
        self.root = cache_dir() / "bisect" / "interpreters" / _targets_key([(path, self.version)])

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)


def _targets_key(targets: Sequence[tuple[str, str]]) -> str:
    import hashlib

    from ..catalogue import specs_dir

    h = hashlib.sha256(repr(sorted(targets)).encode())
    # other hyperparameters or other program code: other runs
    for path in [*sorted((specs_dir() / "variants").glob("*.toml")), *sorted((PACKAGE_ROOT / "reference" / "variants").glob("*.py"))]:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
