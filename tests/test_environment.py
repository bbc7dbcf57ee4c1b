"""reference.harness.environment: what decides a run's bits beyond the versions, recorded with every
trajectory and golden, and the differences between two such records named key by key."""
from __future__ import annotations

import json

import pytest
import torch

import reference
from reference.harness.environment import NOT_RECORDED, describe, explain_difference
from reference.harness import Trajectory

# what these tests assert depends on the process environment they read: kept hermetic, and checked under
# every CI rotation configuration (tests/test_hermetic.py)
pytestmark = pytest.mark.environment


def test_describe_names_cpu_blas_and_kernel_paths_and_is_json_ready():
    env = describe()
    assert env["torch"] == torch.__version__
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["cpu_model"] and isinstance(env["cpu_flags"], list)
    for key in ("torch_mkl", "torch_onednn", "torch_blas", "numpy_blas", "env"):
        assert key in env, key
    assert json.loads(json.dumps(env)) == env
    assert "cuda_device" not in env  # CUDA keys only for a CUDA run


def test_describe_records_the_variables_that_steer_the_kernels(monkeypatch):
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    monkeypatch.setenv("UNRELATED_SETTING", "1")
    env = describe()["env"]
    assert env["MKL_ENABLE_INSTRUCTIONS"] == "AVX2" and env["NVIDIA_TF32_OVERRIDE"] == "0"
    assert "UNRELATED_SETTING" not in env


def test_explain_difference_names_each_key_that_differs_and_nothing_else():
    a = {"torch": "2.13.0", "cpu_model": "Xeon 8480+", "cpu_flags": ["avx2", "avx512f", "amx_tile"],
         "env": {"OMP_NUM_THREADS": "1"}}
    b = {"torch": "2.13.0", "cpu_model": "Xeon 8375C", "cpu_flags": ["avx2", "avx512f"],
         "env": {"OMP_NUM_THREADS": "1", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}
    assert explain_difference(a, b) == [
        "cpu_flags: golden has amx_tile, now lacks amx_tile",
        "cpu_model: golden Xeon 8480+, now Xeon 8375C",
        "env MKL_ENABLE_INSTRUCTIONS: golden unset, now AVX2",
    ]
    assert explain_difference(a, a) == []


def test_an_old_record_reads_as_not_recorded():
    old_golden = {"torch": "2.13.0+cpu", "numpy": "2.4.6", "python": "3.11.7", "machine": "x86_64",
                  "cpu_capability": "AVX512", "threads": 1}
    now = {**describe(), "threads": 1}
    lines = explain_difference(old_golden, now)
    assert f"{NOT_RECORDED} for golden: " in lines[-1] and "cpu_model" in lines[-1] and "env" in lines[-1]
    assert explain_difference({}, now, names=("baseline", "b")) == [f"environment: {NOT_RECORDED} for baseline"]


def test_a_run_records_its_environment_and_old_results_still_load():
    t = reference.run("poly.nn", steps=2, threads=1)
    assert t.environment["cpu_model"] == describe()["cpu_model"] and t.environment["threads"] == 1
    d = t.to_json_dict()
    assert Trajectory.from_json_dict(d).environment == t.environment
    del d["environment"]  # a results file written before the field existed
    assert Trajectory.from_json_dict(d).environment == {}
