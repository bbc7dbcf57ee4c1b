"""What a comparison compares, said in its report: a golden test on a GPU box mixes device and torch
version (CUDA run of this torch vs a CPU golden of another); the device check compares the devices alone."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from reference.judge import goldens as golden
from reference.judge.goldens import GoldenKey
from reference.testing import summary
from reference.testing.summary import DEVICE_CHECK_PROPERTY, GOLDEN_PROPERTY, GoldenResult


@pytest.fixture(scope="module")
def cpu_run(cached_run):
    return cached_run("poly.nn", dtype="float32", steps=3, threads=1)


@pytest.fixture(scope="module")
def gold():
    return golden.read(GoldenKey("poly.nn", "float32", 0))


def test_golden_label_names_where_the_golden_was_recorded_and_what_differs(cpu_run, gold):
    cuda = replace(cpu_run, device="cuda:0", torch_version="2.11.0+cu128")
    env = gold["environment"]
    assert golden.golden_label(cuda, gold) == (
        f"golden: cuda:0 on torch 2.11.0+cu128 vs the golden recorded on torch {env['torch']}, cpu "
        f"({env['cpu_capability']}, 1 thread); device and torch version both differ "
        "(the device check compares the devices alone)")
    assert golden.golden_label(replace(cpu_run, torch_version=env["torch"]), gold).endswith("1 thread)")
    assert golden.golden_label(replace(cpu_run, torch_version="9.9"), gold).endswith("; the torch version differs")


def test_device_check_label_says_cuda_vs_cpu_with_the_same_torch(cpu_run):
    cuda = replace(cpu_run, device="cuda:0")
    assert golden.device_check_label(cuda, cpu_run) == f"device check: cuda:0 vs cpu, same torch {cpu_run.torch_version}, same start"


def _result(summary: str) -> dict:
    """A golden test's recorded result, as the golden fixture stores it."""
    from dataclasses import asdict

    return asdict(GoldenResult("mlp.nn-float32-seed0", "cuda", None, "close", summary, "mlp.nn float32 seed 0",
                               "close 3.0e-06"))


class _Reporter:
    def __init__(self, properties):
        self.stats = {"passed": [SimpleNamespace(when="call", user_properties=properties)]}
        self.lines = []
        for title, lines in summary.sections(self):
            self.lines += [f"== {title}", *lines]


def test_summary_lists_device_checks_apart_from_golden_comparisons(monkeypatch):
    monkeypatch.setattr(golden, "recorded_torch_versions", lambda: {"2.13.0+cpu"})
    monkeypatch.setattr(torch, "__version__", "2.11.0+cu128")
    reporter = _Reporter([
        (GOLDEN_PROPERTY, _result("mlp.nn cuda float32: close, max relative error 3e-06 at step 40")),
        (DEVICE_CHECK_PROPERTY, "device check: cuda:0 vs cpu, same torch 2.11.0+cu128, same start: "
                                         "mlp.nn cuda float32: close"),
    ])
    text = "\n".join(reporter.lines)
    assert "== golden comparisons" in text and "== device checks: CUDA vs CPU from the same start, same torch" in text
    assert ("goldens recorded on torch 2.13.0+cpu, cpu; this session: torch 2.11.0+cu128 on cpu, cuda: the cuda "
            "lines differ from their goldens in device and torch version both") in text
    assert text.index("device check: cuda:0 vs cpu") > text.index("== device checks")


def test_summary_adds_no_note_when_the_goldens_come_from_this_torch(monkeypatch):
    monkeypatch.setattr(golden, "recorded_torch_versions", lambda: {torch.__version__})
    reporter = _Reporter([(GOLDEN_PROPERTY, _result("mlp.nn cuda float32: close, max relative error 3e-06"))])
    assert not any("goldens recorded on" in line for line in reporter.lines)
