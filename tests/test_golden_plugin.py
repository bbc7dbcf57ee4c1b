"""The golden machinery itself: reading, writing, the update flag, and the CUDA policy switches."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reference.judge import goldens as golden
from reference.judge import rules as policy
from reference.judge.goldens import GOLDENS_DIR_ENV, GoldenError, GoldenKey
from reference.judge.status import Status
from reference.judge.verdict import judge

ROOT = Path(__file__).resolve().parent.parent
KEY = GoldenKey("poly.nn", "float64", 0)
NODE = "tests/test_goldens.py::test_golden_trajectory[poly.nn-seed0-cpu_float64]"


@pytest.fixture
def golden_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(GOLDENS_DIR_ENV, str(tmp_path))
    return tmp_path


def _pytest(pytester, *args: str):
    """A pytest session on this suite inside this process (no second `import torch`): the root
    conftest.py and pyproject.toml of this checkout, xdist, randomisation and the cache off."""
    return pytester.runpytest_inprocess(
        "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "-p", "no:xdist", "-p", "no:cacheprovider",
        "-p", "no:randomly", "-q", *[str(ROOT / a) if a.startswith("tests/") else a for a in args])


def test_write_then_read_round_trips_losses_and_environment(golden_dir, cached_run):
    t = cached_run("poly.nn", dtype="float64", steps=KEY.steps, threads=1)
    path, happened = golden.write(KEY, t)
    assert path == golden_dir / "poly.nn" / "float64-seed0.json" and happened == "written"
    data = golden.read(KEY)
    assert data["losses"] == t.losses
    assert data["environment"]["torch"] == torch.__version__ and data["environment"]["threads"] == 1
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # temp file renamed away


def test_write_records_what_decides_the_bits_beyond_versions(golden_dir, cached_run):
    from reference.harness.environment import describe

    t = cached_run("poly.nn", dtype="float64", steps=KEY.steps, threads=1)
    golden.write(KEY, t)
    env = golden.read(KEY)["environment"]
    here = describe()
    for key in ("cpu_model", "cpu_flags", "cpu_capability", "torch_mkl", "torch_onednn", "numpy_blas", "env"):
        assert env[key] == here[key], key


def test_a_read_only_golden_is_refused_not_replaced(golden_dir, cached_run):
    t = cached_run("poly.nn", dtype="float64", steps=KEY.steps, threads=1)
    KEY.path.parent.mkdir(parents=True)
    KEY.path.write_text("reviewed, then made read-only")
    KEY.path.chmod(0o444)
    with pytest.raises(PermissionError, match="is read-only; not replaced"):
        golden.write(KEY, t)
    assert KEY.path.read_text() == "reviewed, then made read-only"


def test_a_worker_writes_no_golden_once_its_controller_has_stopped(golden_dir, cached_run, monkeypatch, request):
    """What each xdist worker's session keeps: the controller's pid, checked before every golden write."""
    from reference.testing.goldens import Golden
    from reference.testing.session import TestSession, controller_gone

    assert controller_gone(os.getppid()) is None
    monkeypatch.setattr(TestSession.of(request.config), "controller_pid", os.getppid() + 1)  # as if re-parented
    monkeypatch.setattr(Golden, "updating", True)
    with pytest.raises(pytest.fail.Exception, match=r"not written: the pytest controller \(pid \d+\) has stopped"):
        Golden(request, cached_run, golden_dir / "artifacts").check(KEY)
    assert not KEY.path.exists()


def test_an_update_rewrites_only_what_differs(golden_dir, cached_run):
    """--update-goldens leaves a golden whose bits the run reproduces alone (the file, and the
    environment it names), and completes a schema-1 golden it reproduces without touching a loss."""
    t = cached_run("poly.nn", dtype="float64", steps=KEY.steps, threads=1, record_state=True)
    assert golden.write(KEY, t)[1] == "written"
    before = KEY.path.read_bytes()
    assert golden.write(KEY, t)[1] == "unchanged" and KEY.path.read_bytes() == before
    old = json.loads(before)
    schema1 = {k: v for k, v in old.items() if k not in ("final_params_sha256", "state_digests")}
    schema1.update(schema=1, environment={k: old["environment"][k] for k in golden.SCHEMA1_ENVIRONMENT})
    KEY.path.write_text(json.dumps(schema1))
    assert golden.read(KEY)["losses"] == t.losses  # read through the migration
    assert golden.write(KEY, t)[1] == "completed"
    completed = json.loads(KEY.path.read_text())
    assert completed["schema"] == 2 and completed["losses"] == old["losses"]
    assert completed["final_params_sha256"] == old["final_params_sha256"] and "provenance" in completed
    changed = dataclasses.replace(t, losses=[*t.losses[:-1], t.losses[-1] * 2])
    assert golden.write(KEY, changed)[1] == "written" and golden.read(KEY)["losses"] == changed.losses


def test_write_refuses_a_trajectory_of_another_key(golden_dir, cached_run):
    t = cached_run("poly.nn", dtype="float32", steps=KEY.steps, threads=1)
    with pytest.raises(ValueError, match="does not belong in golden"):
        golden.write(KEY, t)


def test_missing_golden_names_the_file(golden_dir):
    with pytest.raises(GoldenError, match=r"missing golden .*poly.nn/float64-seed0.json"):
        golden.read(KEY)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not readable JSON"),
        ("[1, 2]", "top level is list"),
        (json.dumps({"schema": 1}), "'variant' missing"),
        (json.dumps({"schema": 9, "variant": "poly.nn", "dtype": "float64", "seed": 0, "steps": 1,
                     "losses": [1.0], "environment": {}, "hyperparameters": {}}), "schema 9"),
        (json.dumps({"schema": 1, "variant": "poly.nn", "dtype": "float32", "seed": 0, "steps": 1,
                     "losses": [1.0], "environment": {}, "hyperparameters": {}}), "dtype is 'float32'"),
        (json.dumps({"schema": 1, "variant": "poly.nn", "dtype": "float64", "seed": 0, "steps": 3,
                     "losses": [1.0], "environment": {}, "hyperparameters": {}}), "1 losses but steps = 3"),
    ],
)
def test_corrupt_or_wrong_schema_golden_names_path_and_problem(golden_dir, content, problem):
    KEY.path.parent.mkdir(parents=True)
    KEY.path.write_text(content)
    with pytest.raises(GoldenError, match=str(KEY.path)) as info:
        golden.read(KEY)
    assert problem in str(info.value)


def test_unused_golden_files_are_listed(golden_dir):
    stray = golden_dir / "mlp.nn" / "float32-seed7.json"
    stray.parent.mkdir(parents=True)
    stray.write_text("{}")
    assert golden.unused_files() == [stray]


def test_update_flow_missing_fails_with_command_update_writes_only_the_selected_then_a_mismatch_fails_with_a_report(
        golden_dir, pytester):
    first = _pytest(pytester, NODE)
    assert first.ret == 1
    assert "missing golden" in first.stdout.str() and f'pytest "{NODE}" --update-goldens' in first.stdout.str()
    assert not any(golden_dir.rglob("*.json"))  # no flag, nothing written

    update = _pytest(pytester, NODE, "--update-goldens")
    assert update.ret == 0, update.stdout.str()[-2000:]
    # the golden and its companion op trace (reference.trace), nothing else
    assert sorted(p.relative_to(golden_dir) for p in golden_dir.rglob("*.json")) == [
        Path("poly.nn/float64-seed0.json"), Path("poly.nn/float64-seed0.trace.json")]

    again = _pytest(pytester, NODE)
    assert again.ret == 0 and "1 exact" in again.stdout.str()
    written = KEY.path.read_bytes()
    unchanged = _pytest(pytester, NODE, "--update-goldens")
    assert unchanged.ret == 0 and "1 unchanged" in unchanged.stdout.str() and KEY.path.read_bytes() == written

    # a golden the run no longer matches: its last loss pushed far beyond any tolerance
    data = json.loads(KEY.path.read_text())
    data["losses"][-1] = float(data["losses"][-1]) * 1e6
    KEY.path.write_text(json.dumps(data))
    artifacts = golden_dir / "artifacts"
    mismatch = _pytest(pytester, NODE, "--artifacts-dir", str(artifacts))
    out = mismatch.stdout.str()
    assert mismatch.ret == 1 and f"golden mismatch for {KEY} on cpu" in out
    assert (artifacts / "goldens" / f"{KEY}-cpu.txt").is_file()
    # the run as a golden file beside the report (pytest-regressions' .obtained): its losses are the run's
    obtained = json.loads((artifacts / "goldens" / f"{KEY}-cpu.obtained.json").read_text())
    assert obtained["losses"][-1] != data["losses"][-1] and obtained["losses"][:-1] == data["losses"][:-1]
    summary = out[out.index("golden comparisons"):]
    assert "1 diverged" in summary


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without a GPU")
def test_require_cuda_without_gpu_fails_at_once_with_one_line(pytester):
    result = _pytest(pytester, "-m", "cuda", "--require-cuda", "tests/test_goldens.py")
    assert result.ret == 3
    lines = [l for l in result.outlines + result.errlines if "--require-cuda" in l]
    assert lines and "CUDA not available" in lines[0] and "cannot run here" in lines[0]


def test_marker_cuda_selects_exactly_the_cuda_tests(pytester):
    result = _pytest(pytester, "-m", "cuda", "--collect-only", "tests/test_goldens.py")
    ids = [l for l in result.outlines if "::" in l]
    assert ids and all("cuda" in i for i in ids)
    assert not [i for i in ids if "[cpu" in i or "-cpu_" in i]


def test_policy_reports_exact_close_and_diverged():
    gold = [100.0, 50.0, 25.0]
    rtol = policy.rule_for("poly.nn", "float64").bands[0].tolerance.rtol
    assert judge("poly.nn", "float64", gold, gold).status is Status.EXACT
    close = judge("poly.nn", "float64", [100.0, 50.0, 25.0 * (1 + rtol / 2)], gold)
    assert close.status is Status.CLOSE and close.max_rel_error_step == 2
    failed = judge("poly.nn", "float64", [100.0, 50.0 * (1 + 2 * rtol), 25.0], gold)
    assert failed.status is Status.DIVERGED and failed.first_bad_step == 1
    assert "step 1" in failed.summary()


@pytest.mark.slow
def test_sigterm_to_the_controller_stops_golden_updates_under_xdist(golden_dir, tmp_path):
    """Reproducer: stopping pytest during `--update-goldens -n 2` (SIGTERM) left its workers writing
    goldens after pytest had exited. SIGTERM now stops the session as Ctrl-C does, and xdist shuts
    its workers down before pytest exits. (After a SIGKILL the workers find themselves re-parented
    and write no further golden: test_a_worker_writes_no_golden_once_its_controller_has_stopped.)"""
    import signal
    import time

    env = {**os.environ, GOLDENS_DIR_ENV: str(golden_dir)}
    env.pop("PYTEST_ADDOPTS", None)
    with open(tmp_path / "log.txt", "w") as log:  # not a pipe: the workers inherit it
        controller = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q", "--update-goldens",
             "tests/test_goldens.py", "-k", "cpu"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 600  # the first golden: minutes on a loaded 2-core machine
        while not any(golden_dir.rglob("*.json")):
            assert controller.poll() is None and time.monotonic() < deadline, "no golden written"
            time.sleep(0.2)
        controller.send_signal(signal.SIGTERM)
        controller.wait(timeout=120)
    finally:
        if controller.poll() is None:
            controller.kill()

    def snapshot():
        return {p: p.stat().st_mtime_ns for p in golden_dir.rglob("*")}

    after_exit = snapshot()
    time.sleep(15)  # most goldens take a second or two: a worker still running would write more
    later = snapshot()
    changed = sorted(str(p) for p in set(later) | set(after_exit) if later.get(p) != after_exit.get(p))
    assert not changed, f"written after the controller exited: {changed}"
