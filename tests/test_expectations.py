"""Expectations per environment (reference/judge/expectations.py): a set recorded here is matched by
fingerprint and judges bit for bit; another fingerprint is named key by key and judged by the
calibrated policy; a matching fingerprint with other bits says the fingerprint missed a factor; a
corrupt, foreign or partial set is one line naming the file; nothing is written over a set unasked."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from reference.cli import main
from reference.injections import INJECTIONS
from reference.judge import expectations
from reference.judge.status import Status

ARGS = ["check", "-q", "--no-properties", "--variants", "poly.nn,poly.optim", "-k", "float64"]


@pytest.fixture(scope="module", autouse=True)
def no_steering_variables():
    """Hermetic: the fingerprint records the variables that steer the kernels (MKL_CBWR, ...), and CI's
    rotation sets some of them on some days; these tests set the ones they mean to differ themselves."""
    from reference.harness.environment import ENV_VARS

    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if any(name == v or (v.endswith("_") and name.startswith(v)) for v in ENV_VARS):
                mp.delenv(name)
        yield


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, no_steering_variables):
    """A set recorded here, by the installed command's path (in-process)."""
    directory = tmp_path_factory.mktemp("expectations") / "here"
    assert main([*ARGS, "--record", str(directory)]) == 0
    return directory


def _check(capsys, *args) -> tuple[int, str, str]:
    status = main([*ARGS, *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_set_recorded_here_judges_this_environment_bit_for_bit(recorded, capsys):
    manifest = json.loads((recorded / expectations.MANIFEST).read_text())
    assert manifest["repeats"] == 2 and set(manifest["devices"]) == {"cpu"}
    assert all(v == 0.0 for v in manifest["devices"]["cpu"]["spread"].values())  # one thread: repeatable
    status, out, _ = _check(capsys, "--expect", recorded)
    assert status == 0 and "matches this environment's fingerprint: judged bit for bit" in out
    assert "2 exact" in out


def test_a_change_fails_naming_the_variant_and_the_op(recorded, capsys):
    with INJECTIONS["rmsprop alpha 0.99 -> 0.9"]():
        status, out, _ = _check(capsys, "--expect", recorded)
    assert status == 1
    assert "poly.optim float64 seed 0 on cpu is not bit for bit the expectation's" in out
    assert "first differing op: aten::addcmul_ at step 0 (update)" in out
    assert "poly.nn float64 seed 0" not in out.split("differences")[1].split("\n\n")[0]


def test_another_fingerprint_names_the_keys_and_falls_back_to_the_policy(recorded, capsys, monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")  # a benign configuration: another fingerprint
    status, out, _ = _check(capsys, "--expect", recorded)
    assert status == 0
    assert ("no expectation for this environment (nearest: " in out
            and "env MKL_CBWR: the set unset, here COMPATIBLE" in out and "judged by the cross-machine policy" in out)


def test_a_matching_fingerprint_with_other_bits_says_the_fingerprint_missed_a_factor(recorded, tmp_path, capsys):
    edited = tmp_path / "edited"
    shutil.copytree(recorded, edited)
    runs = edited / "runs-cpu.json"
    data = json.loads(runs.read_text())
    entry = next(t for t in data["trajectories"] if t["variant"] == "poly.nn")
    entry["losses"][-1] = entry["losses"][-1] * (1 + 2**-50)  # an ulp or so: what a missed factor does
    runs.write_text(json.dumps(data))
    status, out, _ = _check(capsys, "--expect", edited)
    assert status == 1 and "the fingerprint misses a factor that decides the bits" in out


def test_a_set_recorded_against_another_specification_says_so(recorded, tmp_path, capsys):
    edited = tmp_path / "older"
    shutil.copytree(recorded, edited)
    manifest = edited / expectations.MANIFEST
    data = json.loads(manifest.read_text())
    data["provenance"]["specs"] = "0123456789abcdef"
    manifest.write_text(json.dumps(data))
    status, out, _ = _check(capsys, "--expect", edited)
    assert status == 0 and "recorded against another specification (specs 0123456789abcdef, now " in out
    _, out, _ = _check(capsys, "--expect", recorded)
    assert "another specification" not in out


def test_a_box_that_is_not_bitwise_repeatable_is_judged_within_its_recorded_spread(recorded, tmp_path):
    found = expectations.load(recorded)
    run, _ = found.runs["cpu"]["poly.nn float64 seed 0"]
    nudged = [x * (1 + 1e-13) for x in run.losses]
    now = type(run)(**{**run.__dict__, "losses": nudged})
    assert expectations.judge_exact(found, "cpu", now).status is Status.DIVERGED
    found.devices["cpu"]["spread"]["poly.nn float64 seed 0"] = 1e-14  # the recording box's repeats differed
    assert expectations.judge_exact(found, "cpu", now).status is Status.CLOSE
    found.devices["cpu"]["spread"]["poly.nn float64 seed 0"] = 1e-17
    assert expectations.judge_exact(found, "cpu", now).status is Status.DIVERGED


def test_a_gpu_fingerprint_is_matched_key_by_key_never_the_nearest_silently():
    """The CUDA part, on the CPU: fingerprints with the device fields faked."""
    def fake(capability: str) -> expectations.ExpectationSet:
        fp = {"torch": "2.11.0+cu128", "cuda_device": "NVIDIA H100", "cuda_capability": capability, "threads": 1}
        return expectations.ExpectationSet(__import__("pathlib").Path(f"/sets/{capability}"), 2,
                                           {"cuda": {"fingerprint": fp, "spread": {}}}, {})
    here = {"torch": "2.11.0+cu128", "cuda_device": "NVIDIA H100", "cuda_capability": "9.0", "threads": 1}
    exact = expectations.choose([fake("8.0"), fake("9.0")], "cuda", here)
    assert exact.chosen is not None and exact.chosen.path.name == "9.0"
    other = expectations.choose([fake("8.0")], "cuda", here)
    assert other.chosen is None and "cuda_capability: the set 8.0, here 9.0" in other.note
    assert "judged by the cross-machine policy" in other.note
    assert "no expectation set records cuda" in expectations.choose([], "cuda", here).note


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / expectations.MANIFEST).write_text("{not json"), "corrupt, not readable JSON"),
    (lambda d: (d / expectations.MANIFEST).write_text('{"schema": 7}'), "not an expectation set of schema 1"),
    (lambda d: (d / "runs-cpu.json").unlink(), "missing (the set is partial"),
    (lambda d: (d / expectations.MANIFEST).unlink(), "no expectation set here"),
], ids=["corrupt", "foreign", "partial", "absent"])
def test_a_damaged_set_is_one_line_naming_the_file(recorded, tmp_path, capsys, damage, message):
    damaged = tmp_path / "damaged"
    shutil.copytree(recorded, damaged)
    damage(damaged)
    status, out, err = _check(capsys, "--expect", damaged)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert message in err and str(damaged) in err


def test_nothing_is_written_over_a_set_without_overwrite(recorded, capsys):
    before = (recorded / expectations.MANIFEST).read_bytes()
    status, out, err = _check(capsys, "--record", recorded)
    assert status == 2 and "exists: an expectation set is there already; pass --overwrite" in err
    assert (recorded / expectations.MANIFEST).read_bytes() == before


def test_pytest_records_a_set_and_judges_by_it(pytester, tmp_path):
    """The pytest equivalent: --record-expectations DIR, then --expect DIR."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    node = str(root / "tests/test_goldens.py") + "::test_golden_trajectory[poly.nn-seed0-cpu_float64]"
    common = ["--rootdir", str(root), "-c", str(root / "pyproject.toml"), "-p", "no:xdist", "-p", "no:cacheprovider",
              "-p", "no:randomly", "-q", node]
    directory = tmp_path / "set"
    first = pytester.runpytest_inprocess(*common, "--record-expectations", str(directory))
    assert first.ret == 0, first.stdout.str()[-2000:]
    assert json.loads((directory / expectations.MANIFEST).read_text())["devices"]["cpu"]["spread"] == {
        "poly.nn float64 seed 0": 0.0}
    second = pytester.runpytest_inprocess(*common, "--expect", str(directory))
    assert second.ret == 0 and "1 exact" in second.stdout.str()
