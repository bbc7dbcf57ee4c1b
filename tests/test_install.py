"""The install path of docs/install.md that keeps a box's torch: a wheel installed with a constraint
naming the torch that is there leaves that torch's version and every one of its files as they were,
and the installed command works. Marked slow: it makes a virtual environment and installs torch into
it (from the local wheel cache: about a minute here; with no CPU wheel reachable it skips, saying so)."""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True, timeout=1800)


def _torch_files(python: Path) -> dict[str, str]:
    """Every file of the torch distribution in the environment, by digest (its RECORD, checked on disk)."""
    script = ("import hashlib, importlib.metadata as m; d = m.distribution('torch'); "
              "print('\\n'.join(f'{f}\\t{hashlib.sha256(f.locate().read_bytes()).hexdigest()}' "
              "for f in d.files if f.locate().is_file()))")
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True).stdout
    return dict(line.split("\t") for line in out.splitlines())


def test_a_constrained_install_leaves_the_boxs_torch_as_it_was(tmp_path):
    box = tmp_path / "box"
    venv.EnvBuilder(with_pip=True).create(box)
    python = box / "bin" / "python"
    installed = _pip(python, "install", f"torch=={torch.__version__}")
    if installed.returncode != 0:
        pytest.skip(f"torch {torch.__version__} cannot be installed here: {installed.stderr.strip()[-200:]}")
    version = subprocess.run([str(python), "-c", "import torch; print(torch.__version__)"], capture_output=True,
                             text=True, check=True).stdout.strip()
    installed_as = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                                  capture_output=True, text=True, check=True).stdout.strip()
    before = _torch_files(python)

    wheel_dir = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = wheel_dir.glob("torch_examples_spec-*.whl")
    constraint = tmp_path / "keep-torch.txt"
    constraint.write_text(f"torch=={installed_as}\n")  # docs/install.md writes it the same way
    done = _pip(python, "install", "--upgrade", "--constraint", str(constraint), str(wheel))
    assert done.returncode == 0, done.stderr[-2000:]

    after_version = subprocess.run([str(python), "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    assert after_version == version
    after = _torch_files(python)
    assert after.keys() == before.keys() and after == before, "torch's files changed"
    listed = subprocess.run([str(box / "bin" / "torch-examples-spec"), "list"], capture_output=True, text=True)
    assert listed.returncode == 0 and "mlp.autograd" in listed.stdout
