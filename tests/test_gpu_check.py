"""benchmarks/gpu_check.py on the CPU: its arguments, the JSON of a dry run, and its refusal without a GPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402

DRY = ["--dry-run", "--variants", "poly.nn", "--steps", "12", "--repeat", "1"]


@pytest.fixture(autouse=True)
def no_out_env(monkeypatch):
    monkeypatch.delenv("OUT", raising=False)


def _exit_code(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(argv)
    return exc.value.code, capsys.readouterr().err


def test_without_an_output_folder_it_exits_2_saying_how_to_give_one(capsys):
    code, err = _exit_code(["--dry-run"], capsys)
    assert code == 2 and "no output folder: pass --out DIR or set OUT" in err


@pytest.mark.parametrize("argv, says", [
    (["--skip", "speed"], "unknown section(s) speed. Valid choices: pytest_cuda, "),
    (["--variants", "mlp.numpy"], "cannot run on CUDA. Valid choices: mlp.tensor"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--repeat", "0"], "--repeat >= 1"),
], ids=["unknown_section", "cpu_only_variant", "zero_steps", "zero_repeat"])
def test_bad_arguments_exit_2_naming_the_problem_and_the_choices(tmp_path, capsys, argv, says):
    code, err = _exit_code(["--out", str(tmp_path), *argv], capsys)
    assert code == 2 and says in err


def test_out_defaults_to_the_OUT_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.parse_args(["--dry-run"]).out == tmp_path


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without a GPU")
def test_without_a_gpu_it_refuses_in_one_line_exits_3_and_writes_nothing(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpu_check: CUDA not available") and "--dry-run" in err[0]
    assert not (tmp_path / "o").exists()


def test_shell_wrapper_without_a_folder_exits_2_in_one_line():
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert out.stderr.strip() == "gpu_check.sh: no output folder: pass one as the first argument or set OUT"


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    code = gpu_check.main(["--out", str(out), *DRY])
    return code, out, json.loads((out / "gpu_check.json").read_text())


def test_dry_run_writes_one_json_with_every_section_and_exits_0(dry_run):
    code, out, report = dry_run
    assert code == 0 and report["dry_run"] is True and report["device"] == "cpu"
    assert list(report["sections"]) == list(gpu_check.SECTIONS)
    assert {report["sections"][s]["skipped"] for s in gpu_check.PYTEST_SECTIONS} == {"dry run"}
    assert report["environment"]["torch"] == torch.__version__
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json"]


def test_dry_run_compares_each_dtype_step_by_step_against_the_cpu_run(dry_run):
    rows = dry_run[2]["sections"]["devices"]["rows"]
    assert [(r["variant"], r["dtype"]) for r in rows] == [("poly.nn", "float32"), ("poly.nn", "float64")]
    for r in rows:  # the CPU against itself: bitwise
        assert r["steps"] == 12 and r["max_rel_in_window"] == 0.0 and len(r["rel_steps_0_11"]) == 12
        assert r["verdict_cuda_rows"].endswith("exact (bitwise)") and r["caught_by_cuda_rows"] is False
    assert rows[0]["distance_from_float64"]["ratio"] == 1.0


def test_dry_run_tf32_section_sees_emulated_tf32_and_the_summary_lists_it(dry_run):
    report = dry_run[2]
    (row,) = report["sections"]["tf32_on"]["rows"]
    assert row["first_step_beyond"]["2e-05"] == 0 and row["caught_by_cuda_rows"] and row["caught_by_cpu_rows"]
    assert report["summary"]["tf32_on"]["caught_by_cuda_rows"] == ["poly.nn"]
    assert set(report["summary"]["suggested_policy_rows"]) == {"float32_cuda", "float64_cuda"}


def test_dry_run_times_the_mnist_epoch(dry_run):
    speed = dry_run[2]["sections"]["mnist_speed"]
    assert speed["batches"] == 12 and speed["repeat"] == 1 and speed["times"]["cpu"]["median_s"] > 0


def test_an_earlier_report_is_kept_unless_overwrite_is_given(tmp_path, capsys):
    (tmp_path / "gpu_check.json").write_text("earlier")
    assert gpu_check.main(["--out", str(tmp_path), *DRY]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "gpu_check.json").read_text() == "earlier"


def test_pytest_sections_record_counts_and_failure_messages(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2, 'TF32 seen'\n")
    fast = ["-p", "no:randomly", "-p", "no:xdist", "-p", "no:hypothesispytest"]
    result = gpu_check.run_pytest(["test_x.py", *fast], tmp_path, "px", timeout=120, cwd=tmp_path)
    assert result["returncode"] == 1 and result["passed"] == 1 and result["tests"] == 2
    (failed,) = result["failed"]
    assert failed["test"].endswith("test_bad") and "TF32 seen" in failed["message"]
    assert (tmp_path / "px.log").read_text().strip()
