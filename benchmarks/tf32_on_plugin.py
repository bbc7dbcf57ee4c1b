"""pytest plugin for benchmarks/gpu_check.py: CUDA runs with TF32 matmul ON, to see the gate fail.

    PYTHONPATH=.:benchmarks pytest -p tf32_on_plugin -m cuda --require-cuda

Replaces the harness's IEEE float32 switch with one that turns TF32 matmul on for each run (and
restores the settings after it): what a torch, container or caller that leaves TF32 on would do.
Never part of the gate.
"""
from __future__ import annotations


def pytest_configure(config) -> None:
    from reference.harness import precision, running

    running.ieee_float32 = precision.tf32_matmul
