"""The TF32 switch of CUDA runs, its read-back and the float32 matmul probe, checked on any build.

torch's precision settings can be written and read without a GPU, so the switch is exercised here
from every starting state a user can reach with the legacy and the new (torch >= 2.9) settings,
each in a forked process (tests/tf32_switch_scenarios.py). The probe is checked against real
IEEE float32 and against TF32 rounding emulated on the CPU.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import reference
from reference import harness
from reference.harness import precision
from reference.catalogue import load_toml

ROOT = Path(__file__).resolve().parent.parent
CUDA = torch.device("cuda")
PROBE = load_toml("tolerances.toml")["float32_matmul_probe"]


def _run_scenarios() -> list[dict]:
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "tf32_switch_scenarios.py")],
                         capture_output=True, text=True, timeout=1800, cwd=ROOT)  # hangs only
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.fixture(scope="module")
def scenarios(shared_once) -> list[dict]:
    """One process of the session runs them (a torch import and ~70 forks); its workers share the rows."""
    rows = shared_once("tf32 switch scenarios", _run_scenarios)
    errors = [r for r in rows if "child error" in json.dumps(r)]
    assert rows and not errors, errors[:3]
    return rows


def _label(row: dict) -> str:
    return f"{row['mode']} path, start {row['start']}{' (raised inside)' if row['raised'] else ''}"


def test_switch_turns_tf32_off_inside_in_a_state_legacy_reads_accept(scenarios):
    """Inside: no TF32 for matmul, and cuBLAS's legacy check (allowTF32CuBLAS) reads False, not an error."""
    bad = [(_label(r), r["inside"]) for r in scenarios
           if r["inside"].get("tf32_state") is not False or r["inside"].get("legacy.matmul") is not False
           or r["inside"].get("cuda.matmul") == "tf32"]
    assert not bad, bad[:3]


def test_switch_restores_every_setting_as_it_reads_back(scenarios):
    bad = [(_label(r), {k: (v, r["after"][k]) for k, v in r["before"].items() if r["after"][k] != v})
           for r in scenarios if r["after"] != r["before"]]
    assert not bad, bad[:3]


def test_tf32_on_switch_of_the_experiments_turns_it_on_consistently_and_restores_it(scenarios):
    bad = [(_label(r), r["on"], r["after_on"]) for r in scenarios
           if r["on"]["tf32_state"] is not True or r["on"]["legacy.matmul"] is not True or r["after_on"] != r["after"]]
    assert not bad, bad[:3]


def _ambiguous(row: dict) -> bool:
    """The matmul setting reads what its parent (cuda "all", torch.backends.cudnn.fp32_precision)
    reads: written to that value or inheriting it, torch cannot tell (reference.harness.precision._write_back)."""
    b = row["before"]
    return "cudnn" in b and b["cuda.matmul"] == b["cudnn"] != "none"


def test_switch_restores_what_later_settings_depend_on(scenarios):
    """A parent setting written after the run (torch.backends.fp32_precision, cudnn.fp32_precision)
    reaches the same children as it would have without the run in between; except where the
    matmul setting equals its parent's, which the switch restores as inheriting it."""
    matmul_keys = {"cuda.matmul", "legacy.matmul", "float32_matmul_precision"}
    bad = []
    for r in scenarios:
        differ = {k: (v, r["after_followup"][k]) for k, v in r["control"].items() if r["after_followup"][k] != v}
        if differ and not (_ambiguous(r) and set(differ) <= matmul_keys):
            bad.append((_label(r), r["followup_action"], differ))
    assert not bad, bad[:3]


def test_switch_scenarios_cover_both_apis_and_the_exception_path(scenarios):
    starts = {a[0] for r in scenarios for a in r["start"]}
    assert {"legacy.matmul", "float32_matmul_precision"} <= starts
    if precision.has_fp32_precision_api():
        assert {"cuda.matmul", "generic", "cudnn"} <= starts
    assert any(r["raised"] for r in scenarios) and not all(r["raised"] for r in scenarios)


def test_switch_for_torch_before_2_9_restores_the_legacy_precision(scenarios):
    rows = [r for r in scenarios if r["mode"] == "legacy"]
    if not precision.has_fp32_precision_api():
        rows = scenarios  # this torch is one: the whole list took that path
    assert rows and all(r["inside"].get("float32_matmul_precision") == "highest" for r in rows)
    assert any(r["before"]["float32_matmul_precision"] == "medium" for r in rows)


def test_switch_leaves_every_setting_alone_on_the_cpu():
    writes = []

    class Spy:
        def __setattr__(self, name, value):
            writes.append((name, value))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.backends.cuda, "matmul", Spy())
        mp.setattr(torch, "set_float32_matmul_precision", lambda v: writes.append(("precision", v)))
        with harness.full_precision_matmul(torch.device("cpu")) as tf32:
            pass
    assert tf32 is None and writes == []


def test_switch_yields_the_state_read_back_from_torch_not_a_constant(monkeypatch):
    """With TF32 turned on by the caller, the switch reports False; a switch that does nothing
    (a torch that ignores it) reports True."""
    with precision.tf32_matmul(CUDA):
        assert precision.tf32_state(CUDA) is True
        with harness.full_precision_matmul(CUDA) as tf32:
            assert tf32 is False and precision.tf32_state(CUDA) is False
        assert precision.tf32_state(CUDA) is True  # restored
        monkeypatch.setattr(harness.running, "ieee_float32", lambda device: contextlib.nullcontext())
        with harness.full_precision_matmul(CUDA) as tf32:
            assert tf32 is True
    assert precision.tf32_state(CUDA) is False


def test_probe_measures_ieee_float32_within_its_bound_and_emulated_tf32_far_beyond():
    ieee = precision.matmul_probe(torch.device("cpu"))
    with precision.emulated_tf32():
        tf32 = precision.matmul_probe(torch.device("cpu"))
    assert set(ieee) == set(tf32) == {"matmul", "linear"}
    assert all(e <= PROBE["rtol"] / 10 for e in ieee.values()), ieee
    assert all(e >= PROBE["rtol"] * 10 for e in tf32.values()), tf32


def test_probe_leaves_the_global_random_state_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    precision.matmul_probe(torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected)


def test_emulated_tf32_rounds_backward_matmuls_too():
    w = torch.randn(50, 40, requires_grad=True)
    x = torch.randn(30, 50)
    (x @ w).square().sum().backward()
    exact = w.grad.clone()
    w.grad = None
    with precision.emulated_tf32():
        y = x @ w
        assert torch.equal(y, precision.tf32_round(x) @ precision.tf32_round(w.detach()))
        y.square().sum().backward()
    assert not torch.equal(w.grad, exact)


@pytest.fixture(scope="module")
def cpu_run():
    return reference.run("mlp.nn", steps=2, threads=1)


def _as_cuda(t, **changes):
    return replace(t, device="cuda:0", **changes)


def test_check_full_precision_passes_a_cuda_run_with_tf32_off_and_an_ieee_probe(cpu_run):
    harness.check_full_precision(_as_cuda(cpu_run, tf32=False, float32_matmul_error={"matmul": 3e-7, "linear": 4e-7}))
    harness.check_full_precision(cpu_run)  # the CPU: nothing to check


@pytest.mark.parametrize("tf32, errors, says", [
    (True, {"matmul": 3e-7, "linear": 3e-7}, "torch reports TF32 on"),
    (False, {"matmul": 3e-4, "linear": 3e-7}, "float32 matmul is off by 0.0003"),
    (False, None, "no float32 matmul probe"),
], ids=["tf32_read_back_on", "probe_sees_tf32", "no_probe"])
def test_check_full_precision_fails_a_cuda_run_that_is_not_ieee_float32(cpu_run, tf32, errors, says):
    with pytest.raises(AssertionError, match=says):
        harness.check_full_precision(_as_cuda(cpu_run, tf32=tf32, float32_matmul_error=errors))


def test_cpu_run_records_no_tf32_state_and_no_probe(cpu_run):
    assert cpu_run.tf32 is None and cpu_run.float32_matmul_error is None


def test_trajectory_json_round_trips_the_probe_and_reads_files_without_it(cpu_run):
    t = _as_cuda(cpu_run, tf32=False, float32_matmul_error={"matmul": 3e-7, "linear": 4e-7})
    d = json.loads(json.dumps(t.to_json_dict()))
    assert harness.Trajectory.from_json_dict(d).float32_matmul_error == t.float32_matmul_error
    del d["float32_matmul_error"]
    assert harness.Trajectory.from_json_dict(d).float32_matmul_error is None
