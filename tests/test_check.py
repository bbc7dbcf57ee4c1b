"""`torch-examples-spec check`: the installed torch against the shipped goldens, exit statuses,
--out for compare, --html, CUDA handling, and an injected change caught (the check runs in-process:
an injection around main() changes what its runs compute).

The runs are filtered to cheap variants (-k): the full check is `python -m reference check`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from reference import injections
from reference.cli import main
from reference.harness.planning import cuda_unavailable_reason
from reference.injections import INJECTIONS
from reference.judge import goldens as golden
from reference.judge.goldens import GoldenKey
from reference.judge.status import Status
from report_page import Page
from torch_skips import skip_unless_clamp_passes_gradient_at_zero

# the cheapest golden rows (about a second each at one thread)
CHEAP = "poly.tensor"


@pytest.fixture(autouse=True)
def check_shares_the_session_runs(monkeypatch, cached_run):
    """The check's runs of the unchanged program are the session's (cached_run); under an injection
    it makes its own, as the installed command does."""
    from reference.harness import running

    own_run = running.run
    monkeypatch.setattr(running, "run",
                        lambda *args, **kwargs: (own_run if injections.active() else cached_run)(*args, **kwargs))


def run_check(capsys, *args) -> tuple[int, str, str]:
    status = main(["check", "-q", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_check_exits_0_and_prints_the_matrix_when_nothing_differs(capsys):
    status, out, err = run_check(capsys, "-k", CHEAP)
    assert status == 0, out + err
    # exact on the goldens' kernel path, close (within the policy) on another CPU's
    assert re.search(r"poly\.tensor float32 seed 0\s+(exact|close)", out), out
    assert re.search(r"poly\.tensor float64 seed 0\s+(exact|close)", out), out
    assert "poly.tensor: manual gradients equal autograd" in out
    assert out.rstrip().splitlines()[-1].startswith("(")  # the timing line after the verdict
    assert "nothing diverged beyond the policy" in out


def test_check_under_an_injected_change_exits_1_and_names_the_differing_variants(capsys):
    with INJECTIONS["mse 'sum' -> 'mean'"]():
        status, out, err = run_check(capsys, "--variants", "poly.nn,poly.tensor", "--no-properties")
    assert status == 1, out + err
    last = out.rstrip().splitlines()[-2]
    assert last.startswith("DIVERGED beyond the policy in poly.nn:"), last
    assert "poly.tensor" not in last  # computes its loss by hand: the injection cannot reach it
    assert "INJECTED CHANGE" in err and "mse 'sum' -> 'mean'" in err


def test_check_properties_catch_a_clamp_whose_gradient_at_zero_is_relus(capsys):
    skip_unless_clamp_passes_gradient_at_zero("here")
    with INJECTIONS["clamp(min=0) grad at 0: 1 -> 0 (relu's)"]():
        status, out, _ = run_check(capsys, "-k", "gradient at exactly 0")
    assert status == 1
    assert "DIVERGED beyond the policy in mlp.autograd" in out and "clamp(min=0) passes" in out


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "--device 'tpu' is not a choice. Valid choices: cpu, cuda, all"),
    (["--variants", "mlp.nope"], "--variants: unknown variant 'mlp.nope'. Valid choices:"),
    (["-k", "nothing matches this"], "-k 'nothing matches this' selects nothing. Valid choices:"),
], ids=["device", "variant", "filter"])
def test_bad_input_exits_2_with_one_line_naming_the_valid_choices(capsys, args, message):
    status, out, err = run_check(capsys, *args)
    assert status == 2
    assert err.count("\n") == 1 and message in err, err
    assert out == ""  # nothing ran


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_require_cuda_without_a_gpu_exits_2_with_one_line_and_runs_nothing(capsys):
    status, out, err = run_check(capsys, "--device", "cuda", "--require-cuda")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "--require-cuda: CUDA not available" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_device_cuda_without_a_gpu_exits_2_with_one_line_and_checks_nothing(capsys):
    """A validation that checked nothing must not report green (pytest itself exits 5 when nothing ran)."""
    status, out, err = run_check(capsys, "--device", "cuda")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and f"--device cuda: {cuda_unavailable_reason()}" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_device_all_without_a_gpu_checks_the_cpu_and_says_why_cuda_was_skipped(capsys):
    status, out, _ = run_check(capsys, "--device", "all", "-k", "poly.tensor float64", "--no-properties")
    assert status == 0
    assert out.count(f"cuda: skipped: {cuda_unavailable_reason()}") == 1  # said once, not once per section
    assert re.search(r"poly\.tensor float64 seed 0\s+(exact|close)", out), out


def test_a_missing_golden_exits_2_naming_the_file(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv(golden.GOLDENS_DIR_ENV, str(tmp_path))
    status, out, _ = run_check(capsys, "-k", "poly.tensor float64", "--no-properties")
    assert status == 2
    assert f"missing golden {tmp_path}/poly.tensor/float64-seed0.json" in out


def test_out_writes_results_that_compare_reads_and_refuses_to_overwrite(capsys, tmp_path):
    out_dir = tmp_path / "results"
    assert run_check(capsys, "-k", "poly.tensor float", "--no-properties", "--out", out_dir)[0] == 0
    data = json.loads((out_dir / "check-cpu.json").read_text())
    assert sorted((t["variant"], t["dtype"]) for t in data["trajectories"]) == [
        ("poly.tensor", "float32"), ("poly.tensor", "float64")]
    again = tmp_path / "again"
    again.mkdir()
    (again / "check-cpu.json").write_bytes((out_dir / "check-cpu.json").read_bytes())
    status = main(["compare", str(out_dir), str(again), "--no-plots"])
    out = capsys.readouterr().out
    assert status == 0 and re.search(r"poly\.tensor float32 seed 0\s+baseline\s+exact", out), out
    status, _, err = run_check(capsys, "-k", "poly.tensor float", "--no-properties", "--out", out_dir)
    assert status == 2 and "exists; pass --overwrite" in err


def test_html_report_has_the_matrix_environments_and_each_differing_cells_curves(capsys, tmp_path):
    page_path = tmp_path / "check.html"
    with INJECTIONS["mse 'sum' -> 'mean'"]():
        status, _, _ = run_check(capsys, "--variants", "poly.nn,poly.tensor", "--no-properties", "--html", page_path)
    assert status == 1
    page = Page(page_path.read_text())
    assert page.verdict_ok == "false"
    assert page.cells[("poly.tensor float64 seed 0", "cpu")] in ("exact", "close")  # close on other CPU paths
    assert page.cells[("poly.nn float64 seed 0", "cpu")] == "diverged"
    assert page.cells[("poly.nn float64 seed 0", "golden")] == "baseline"
    section = page.sections[("poly.nn float64 seed 0", "cpu")]
    assert section["first-difference"] == "0"  # 'mean' changes the very first loss
    assert section["first-bad-step"].isdigit()
    # mean for sum changes the forward at step 0, which the golden's kept op trace names
    assert section["first-op"].startswith("first differing op: aten::mse_loss at step 0 (forward)"), section
    assert ("poly.nn float64 seed 0", "cpu") in page.svgs
    drawn = page.drawn[("poly.nn float64 seed 0", "cpu")]
    assert f"[cpu]: DIVERGED @{section['first-bad-step']} " in drawn["verdict-title"][0]  # the verdict, in the title
    assert drawn["band"] == ["allowed by the policy"]  # the band the policy allows, shaded
    assert drawn["first-bad"] == [f"first step outside the policy: {section['first-bad-step']}"]  # and its marker
    assert drawn["reference"] and drawn["run"]  # both curves drawn (the golden's wider, under the run's)
    if page.cells[("poly.tensor float64 seed 0", "cpu")] == "exact":
        assert ("poly.tensor float64 seed 0", "cpu") not in page.sections  # exact cells have no section
    assert page.environment["torch"]["cpu"] == torch.__version__
    assert page.environment["torch"]["golden"]  # what the goldens were recorded with
    assert page.external == []  # self-contained


def test_pytest_gate_and_check_judge_with_the_same_function(monkeypatch):
    """tests/test_goldens.py's verdict is judge_golden's (reference/judge/goldens.py): a runner that returns a changed run
    (losses x 1.01) fails it, an unchanged one passes it."""
    key = GoldenKey("poly.tensor", "float64", 0)
    real = golden.judge_golden(key)
    assert real.verdict.ok and real.now.steps == key.steps  # exact here; close on other CPU paths

    def changed(variant, **kwargs):
        t = real.now
        return type(t)(**{**t.__dict__, "losses": [x * 1.01 for x in t.losses]})

    judged = golden.judge_golden(key, runner=changed)
    assert judged.verdict.status is Status.DIVERGED and judged.verdict.first_bad_step == 0


@pytest.mark.slow
def test_built_wheel_carries_every_golden_and_spec_file(tmp_path):
    """`check` without a checkout reads reference/_specs inside the wheel: every golden the policy
    names and every TOML must be in it."""
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("torch_examples_spec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    specs = root / "specs"
    wanted = {f"reference/_specs/{p.relative_to(specs)}" for p in specs.rglob("*.toml")}
    wanted |= {f"reference/_specs/goldens/{k.variant}/{k.dtype}-seed{k.seed}.json" for k in golden.all_keys()}
    wanted |= {str(p.relative_to(root)) for p in (root / "reference").rglob("*.py")}
    assert not wanted - names, f"missing from the wheel: {sorted(wanted - names)[:5]}"


def test_every_package_of_reference_is_listed_for_the_wheel():
    """pyproject.toml lists the packages a wheel carries: a folder missing from it is missing from every
    install that is not editable (`torch-examples-spec` then fails on import)."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "reference").rglob("__init__.py")}
    assert not found - listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"
