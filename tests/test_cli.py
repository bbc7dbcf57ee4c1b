"""`python -m reference run` with bad input: each class of bad invocation is refused before any work,
with exit status 2 and one line naming the problem and the valid choices, no traceback, and nothing
lost (no run started, no file written or replaced). Then: files written as users expect, and a run
that fails part-way keeps what finished.

The CLI is called in-process (reference.cli.main) wherever the behaviour allows: a subprocess costs
a torch import each.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from reference import cli
from reference.cli import run as run_command
from reference.mnist import export_embedded

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_runs(monkeypatch):
    """Fails the test if the CLI starts a run; returns the list of variants it tried."""
    started = []

    def execute(variant_id, **kwargs):
        started.append(variant_id)
        raise AssertionError(f"{variant_id} started before the invocation was refused")

    monkeypatch.setattr(run_command, "execute", execute)
    return started


def refused(capsys, argv) -> str:
    """Run the CLI; assert the one-line refusal with status 2; return that line."""
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _cannot_create_in(directory: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=directory)
    except OSError:
        return True
    os.close(fd)
    os.unlink(probe)
    return False


@pytest.fixture
def unwritable_dir(tmp_path):
    """A directory this process cannot create files in (as root, mode bits do not stop it: use a
    kernel directory that refuses new files)."""
    d = tmp_path / "read-only"
    d.mkdir()
    d.chmod(0o555)
    try:
        if _cannot_create_in(d):
            yield d
            return
        for candidate in (Path("/sys/kernel"), Path("/proc/self")):
            if candidate.is_dir() and _cannot_create_in(candidate):
                yield candidate
                return
        pytest.skip("no directory here refuses new files to this process (root on an unusual system)")
    finally:
        d.chmod(0o755)


# --- the bad-input table: one test per class of reproducer --------------------------------------

@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "mlp.nnn"], ["unknown variant 'mlp.nnn'", "Valid choices:", "mlp.nn"]),
        (["run", "mlp.nn", "--set", "learning_rate=1"],
         ["has no hyperparameter 'learning_rate'", "Valid choices: N, D_in, H, D_out, lr"]),
        (["run", "mlp.nn", "--set", "lr"], ["--set expects NAME=VALUE"]),
        (["run", "mlp.module", "--set", "optimizer=rmsprop"], ["optimizer='rmsprop'", "Valid choices: sgd, adam"]),
        (["run", "mlp.nn", "--dtype", "float16"], ["dtype 'float16'", "Valid choices: float32, float64"]),
        (["run", "mlp.nn", "--device", "tpu"], ["device 'tpu'", "Valid choices: cpu, cuda"]),
        (["run", "mlp.nn", "poly.nn", "--set", "N=10"], ["poly.nn has no hyperparameter 'N'", "Valid choices:"]),
    ],
    ids=["variant", "override-name", "override-syntax", "choice", "dtype", "device-kind", "override-of-another-family"],
)
def test_unknown_names_are_refused_with_the_valid_choices(capsys, no_runs, argv, expected):
    line = refused(capsys, argv)
    for text in expected:
        assert text in line
    assert not no_runs


def test_python_m_reference_refuses_an_unknown_variant_with_one_line_and_status_2():
    """reference/__main__.py end to end, once (a subprocess: ~5 s, its torch import)."""
    out = subprocess.run([sys.executable, "-m", "reference", "run", "mlp.nnn"], capture_output=True, text=True,
                         cwd=ROOT, check=False, timeout=300)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown variant 'mlp.nnn'"), out.stderr[-2000:]
    assert "Valid choices: " in lines[0] and "mlp.nn," in lines[0]


@pytest.mark.parametrize("name, value, flag", [
    ("steps", "5", "--steps 5"), ("seed", "3", "--seed 3"), ("device", "cuda", "--device cuda"),
    ("dtype", "float64", "--dtype float64"), ("threads", "2", "--threads 2"),
])
def test_run_arguments_given_as_overrides_point_to_their_flag(capsys, no_runs, name, value, flag):
    line = refused(capsys, ["run", "mlp.nn", "--set", f"{name}={value}"])
    assert f"{name} is not a hyperparameter; use {flag}" in line


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--set", "H=-5"], "H must be a whole number from 1 to 2147483647, got -5"),
        (["--set", "N=0"], "N must be a whole number from 1 to 2147483647, got 0"),
        (["--set", "N=1e30"], "N must be a whole number from 1 to 2147483647, got 1e+30"),
        (["--set", "N=2.5"], "N must be a whole number"),
        (["--set", "N=100000000"], "more than this machine's"),
        (["--set", "lr=nan"], "lr must be a finite number, got nan"),
        (["--set", "lr=inf"], "lr must be a finite number, got inf"),
        (["--set", "lr=-1e-4"], "lr must be >= 0"),
        (["--set", "lr=fast"], "--set lr expects a number, got 'fast'"),
        (["--seed", "4294967296"], "--seed 4294967296: must be from 0 to 4294967295"),
        (["--seed", "-1"], "--seed -1: must be from 0 to 4294967295"),
        (["--steps", "0"], "--steps 0: must be 1 or more"),
        (["--threads", "0"], "--threads 0: must be 1 or more"),
        (["--device", "cpu:1"], "device 'cpu:1' does not exist"),
    ],
    ids=["negative-size", "zero-size", "huge-size", "fractional-size", "too-big-for-memory", "nan", "inf",
         "negative-lr", "not-a-number", "seed-over-32-bits", "negative-seed", "steps", "threads", "cpu-index"],
)
def test_values_out_of_range_are_refused_before_any_run(capsys, no_runs, argv, expected):
    line = refused(capsys, ["run", "mlp.nn", "mlp.optim", *argv])
    assert expected in line
    assert "overwrite=True" not in line and "or None" not in line  # the flags' words, not the API's
    assert not no_runs


def test_a_bad_mnist_root_is_refused_before_the_first_variant_runs(capsys, no_runs, monkeypatch, tmp_path):
    """Reproducer: MNIST_ROOT=/nonexistent ... run --all --out all.json ran 17 variants first."""
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "nonexistent"))
    out = tmp_path / "all.json"
    line = refused(capsys, ["run", "--all", "--out", str(out)])
    assert f"MNIST_ROOT={tmp_path / 'nonexistent'}" in line and "is not a directory" in line
    assert not no_runs and not out.exists()


def test_an_mnist_root_missing_a_file_names_it(capsys, no_runs, tmp_path):
    root = tmp_path / "mnist"
    export_embedded(root)
    (root / "t10k-labels-idx1-ubyte").unlink()
    line = refused(capsys, ["run", "mnist.quickstart", "--mnist-root", str(root)])
    assert "--mnist-root" in line and "t10k-labels-idx1-ubyte not found" in line


def test_a_damaged_mnist_file_is_refused_before_the_run(capsys, no_runs, tmp_path):
    root = tmp_path / "mnist"
    export_embedded(root)
    labels = root / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-3])
    assert "truncated" in refused(capsys, ["run", "mnist.quickstart", "--mnist-root", str(root)])


@pytest.mark.parametrize("case", ["in-a-file", "trailing-slash", "a-directory", "exists", "read-only"])
def test_bad_output_paths_are_refused_before_the_run_and_nothing_is_touched(capsys, no_runs, tmp_path, monkeypatch,
                                                                           case):
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "existing.json"
    existing.write_text("the user's data")
    (tmp_path / "results").mkdir()
    argv, expected = {
        "in-a-file": (["--out", "existing.json/r.json"], "existing.json is a file, not a directory"),
        "trailing-slash": (["--out", "new/"], "--out new/: is a directory; give a file name"),
        "a-directory": (["--out", "results"], "--out results: is a directory; give a file name"),
        "exists": (["--out", "existing.json"], "--out existing.json exists; pass --overwrite to replace it"),
        "read-only": (["--out", "existing.json", "--overwrite"], "--out existing.json is read-only; not replaced"),
    }[case]
    if case == "read-only":
        existing.chmod(0o444)
    line = refused(capsys, ["run", "mlp.nn", *argv])
    assert expected in line
    assert existing.read_text() == "the user's data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.json", "results"]  # no `new` file either


def test_an_output_in_an_unwritable_directory_is_refused_before_the_run(capsys, no_runs, unwritable_dir):
    line = refused(capsys, ["run", "mlp.nn", "--out", str(unwritable_dir / "r.json")])
    assert f"cannot write in {unwritable_dir}" in line
    assert not no_runs


# --- what a good invocation writes ----------------------------------------------------------------

def test_out_expands_tilde_and_creates_missing_folders(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "poly.nn", "--steps", "2", "--out=~/runs/new/r.json"]) == 0
    written = tmp_path / "home" / "runs" / "new" / "r.json"
    assert json.loads(written.read_text())["trajectories"][0]["steps"] == 2
    assert not (tmp_path / "~").exists()
    assert f"wrote 1 trajectories to {written}" in capsys.readouterr().out


def test_out_file_honours_the_umask_0644_under_umask_022(tmp_path, monkeypatch, capsys, umask):
    """The acceptance line `umask 022; python -m reference run mlp.nn --steps 5 --out r.json`, in-process."""
    monkeypatch.chdir(tmp_path)
    umask(0o022)
    assert cli.main(["run", "mlp.nn", "--steps", "5", "--out", "r.json"]) == 0
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_overwrite_keeps_the_existing_files_mode(capsys, tmp_path):
    out = tmp_path / "r.json"
    out.write_text("{}")
    out.chmod(0o640)
    assert cli.main(["run", "poly.nn", "--steps", "2", "--out", str(out), "--overwrite"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert json.loads(out.read_text())["trajectories"]


# --- a run that fails part-way keeps what finished -----------------------------------------------

@pytest.fixture
def second_variant_fails(monkeypatch):
    real = run_command.execute
    calls = []

    def execute(variant_id, **kwargs):
        calls.append(variant_id)
        if len(calls) == 2:
            raise ValueError("the data changed under the run")
        return real(variant_id, **kwargs)

    monkeypatch.setattr(run_command, "execute", execute)
    return calls


def test_a_multi_variant_run_failing_part_way_writes_what_finished_and_says_where(capsys, tmp_path,
                                                                                  second_variant_fails):
    out = tmp_path / "all.json"
    status = cli.main(["run", "poly.nn", "poly.tensor", "poly.module", "--steps", "3", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert status == 2
    assert [t["variant"] for t in json.loads(out.read_text())["trajectories"]] == ["poly.nn"]
    assert f"stopped after 1 of 3 runs; the finished trajectories are in {out}" in err
    assert "poly.nn" in stdout  # its row of the table
    # the progress bar ends its line before the messages: each starts a line of its own
    lines = err.split("\n")
    assert any(line.startswith("stopped after") for line in lines)
    assert any(line.startswith("error: the data changed under the run") for line in lines)
    assert "Traceback" not in err


def test_a_run_failing_part_way_without_out_shows_what_finished(capsys, second_variant_fails):
    status = cli.main(["run", "poly.nn", "poly.tensor", "--steps", "3"])
    stdout, err = capsys.readouterr()
    assert status == 2
    assert "poly.nn" in stdout and "stopped after 1 of 2 runs; the finished trajectories are above" in err


# --- compare --------------------------------------------------------------------------------------

def test_every_command_is_on_the_command_line():
    """One module per command under reference/cli/, each registered: none is lost to an import."""
    parser = cli.build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert sorted(choices) == ["bisect", "check", "compare", "list", "locate", "run"]


def test_dtype_both_runs_each_variant_in_every_dtype_it_has(tmp_path, capsys):
    """What compare's float32 shadow check needs: the float64 run of the same start beside each float32 one."""
    out = tmp_path / "both.json"
    assert cli.main(["run", "poly.nn", "mlp.numpy", "--dtype", "both", "--steps", "2", "--out", str(out)]) == 0
    runs = json.loads(out.read_text())["trajectories"]
    assert sorted((t["variant"], t["dtype"]) for t in runs) == [
        ("mlp.numpy", "float32"), ("mlp.numpy", "float64"), ("poly.nn", "float32"), ("poly.nn", "float64")]
    assert "wrote 4 trajectories" in capsys.readouterr().out


def test_run_out_keeps_a_digest_and_a_record_of_the_final_parameters_unless_asked_for_every_value(tmp_path, capsys):
    small, full = tmp_path / "small.json", tmp_path / "full.json"
    assert cli.main(["run", "mlp.nn", "--steps", "2", "--out", str(small)]) == 0
    assert cli.main(["run", "mlp.nn", "--steps", "2", "--out", str(full), "--full-params"]) == 0
    kept, every = (json.loads(p.read_text())["trajectories"][0] for p in (small, full))
    assert kept["params"] == {} and kept["params_sha256"] and kept["params_record"]
    assert sum(len(v) for v in every["params"].values()) == 1000 * 100 + 100 + 100 * 10 + 10
    assert small.stat().st_size * 50 < full.stat().st_size
    said = capsys.readouterr().out
    assert "final parameters as digest and record, --full-params keeps every value" in said
