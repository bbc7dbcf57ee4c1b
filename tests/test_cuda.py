"""CUDA runs are IEEE float32: TF32 off as torch reads it back, and as a float32 matmul measures it.

See Note [TF32] in reference/harness/precision.py.
Skipped without a GPU; `pytest -m cuda --require-cuda` fails instead.
"""
from __future__ import annotations

import pytest
import torch

import reference
from reference.harness import precision
from reference.catalogue import load_toml
from reference.harness import check_full_precision

pytestmark = pytest.mark.cuda

PROBE = load_toml("tolerances.toml")["float32_matmul_probe"]
CUDA = torch.device("cuda")


def _tf32_capable() -> bool:
    return torch.cuda.get_device_capability() >= (8, 0)


@pytest.mark.parametrize("variant_id", ["mlp.nn", "mnist.quickstart_fixed"])
def test_cuda_run_records_tf32_off_and_an_ieee_float32_probe(variant_id):
    t = reference.run(variant_id, steps=3, device="cuda")
    assert t.tf32 is False
    check_full_precision(t)


def test_cuda_probe_sees_tf32_when_it_is_on():
    if not _tf32_capable():
        pytest.skip(f"{torch.cuda.get_device_name()} has no TF32 (compute capability < 8.0)")
    with precision.tf32_matmul(CUDA):
        errors = precision.matmul_probe(CUDA)
    assert all(e > PROBE["rtol"] * 3 for e in errors.values()), errors


def test_cuda_run_switches_off_tf32_the_caller_turned_on_and_turns_it_back_on():
    with precision.tf32_matmul(CUDA):
        t = reference.run("mlp.nn", steps=3, device="cuda")
        after = precision.tf32_state(CUDA)
    assert t.tf32 is False and after is True
    check_full_precision(t)
