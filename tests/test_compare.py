"""`python -m reference compare DIR...` on small synthetic results directories, and the
`--record-trajectories DIR` option that writes such directories (what each tox env does)."""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import torch

from reference.cli import main
from reference.harness.trajectory import Trajectory, read_trajectories, save_trajectories
from reference.testing.plugin import PYTESTER_ARGS


ROOT = Path(__file__).resolve().parent.parent
STEPS = 500  # mlp.nn's own, so the rows carry no "N steps"


def trajectory(variant="mlp.nn", dtype="float64", *, seed=0, device="cpu", losses=None, params=None,
               torch_version="2.13.0+cpu", hyperparameters=None) -> Trajectory:
    losses = [100.0 * 0.9**t for t in range(STEPS)] if losses is None else losses
    return Trajectory(
        variant=variant, seed=seed, device=device, dtype=dtype, steps=len(losses), threads=1,
        losses=list(losses), params=params if params is not None else {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]])},
        hyperparameters=hyperparameters if hyperparameters is not None else {"lr": 1e-4},
        torch_version=torch_version, numpy_version="2.4.6", python_version="3.11.7",
        cpu_capability="AVX512", tf32=False, wall_time_s=0.1,
    )


def perturbed(losses, rel, from_step=0):
    return [x * (1 + rel) if t >= from_step else x for t, x in enumerate(losses)]


def results(tmp_path: Path, name: str, *trajectories: Trajectory, file="main.json") -> Path:
    d = tmp_path / name
    save_trajectories(d / file, list(trajectories))
    return d


def run_compare(capsys, *args) -> tuple[int, str, str]:
    status = main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def matrix(out: str) -> dict[str, list[str]]:
    """The printed matrix: row label -> cells (columns are separated by two or more spaces)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("run  "))
    rows = {"run": re.split(r"\s{2,}", lines[start])[1:]}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        label, *cells = re.split(r"\s{2,}", line)
        rows[label] = cells
    return rows


BASE = [100.0 * 0.9**t for t in range(STEPS)]


def test_bitwise_equal_runs_are_marked_exact_and_exit_zero_without_plots(tmp_path, capsys):
    a = results(tmp_path, "torch213", trajectory())
    b = results(tmp_path, "torch214", trajectory(torch_version="2.14.1+cu130"))
    plots = tmp_path / "plots"
    status, out, _ = run_compare(capsys, a, b, "--plots", plots)
    assert status == 0
    assert matrix(out)["mlp.nn float64 seed 0"] == ["baseline", "exact"]
    assert "torch 2.13.0+cpu" in out and "torch 2.14.1+cu130" in out
    assert "nothing diverged" in out
    assert not plots.exists()


def test_small_drift_within_policy_is_close_with_its_max_relative_error(tmp_path, capsys):
    a = results(tmp_path, "torch213", trajectory())
    b = results(tmp_path, "torch29", trajectory(losses=perturbed(BASE, 3e-9, from_step=10)))
    status, out, _ = run_compare(capsys, a, b, "--no-plots")
    assert status == 0
    assert matrix(out)["mlp.nn float64 seed 0"] == ["baseline", "close 3.0e-09"]
    assert "bitwise equal up to step 9; close" in out
    assert "judged by the row [mlp.nn float64] of specs/golden_tolerances.toml" in out


@pytest.mark.parametrize("size, status", [(3e-9, 0), (1e-3, 1)], ids=["close", "diverged"])
def test_every_cell_that_is_not_exact_gets_a_plot(tmp_path, capsys, size, status):
    pytest.importorskip("matplotlib", reason="the plots need matplotlib: pip install -e '.[plot]'")
    a = results(tmp_path, "torch213", trajectory())
    b = results(tmp_path, "torch29", trajectory(losses=perturbed(BASE, size, from_step=10)))
    plots = tmp_path / "plots"
    assert run_compare(capsys, a, b, "--plots", plots)[0] == status
    assert [p.name for p in plots.iterdir()] == ["mlp.nn-float64-seed0--torch29.png"]


def test_change_beyond_policy_is_diverged_with_first_step_and_size_and_exit_one(tmp_path, capsys):
    a = results(tmp_path, "torch213", trajectory())
    b = results(tmp_path, "torch214", trajectory(losses=perturbed(BASE, 1e-3, from_step=7)))
    status, out, _ = run_compare(capsys, a, b, "--no-plots")
    assert status == 1
    assert matrix(out)["mlp.nn float64 seed 0"] == ["baseline", "DIVERGED @7 1.0e-03"]
    assert "<- first outside tolerance" in out  # the checkpoint table of the diverged cell
    assert out.rstrip().splitlines()[-1].startswith("DIVERGED beyond the policy in mlp.nn: mlp.nn float64 seed 0 [torch214]")


def test_float32_cell_is_judged_against_the_baselines_float64_shadow(tmp_path, capsys):
    f64 = trajectory(dtype="float64")
    gold32 = trajectory(dtype="float32", losses=perturbed(BASE, 1e-7))
    # beyond the early window, the drift moves the run around the float64 run, not away from it
    near = trajectory(dtype="float32", losses=[x * (1 + (1e-7 if t < 50 else -1e-7)) for t, x in enumerate(BASE)])
    away = trajectory(dtype="float32", losses=[x * (1 + (1e-7 if t < 50 else 0.2)) for t, x in enumerate(BASE)])
    a = results(tmp_path, "base", f64, gold32)
    b = results(tmp_path, "near", near)
    c = results(tmp_path, "away", away)
    status, out, _ = run_compare(capsys, a, b, c, "--no-plots")
    assert status == 1
    # the 20 % jump at step 50 moves the run away from float64 (and its tail away from the baseline's)
    cells = matrix(out)["mlp.nn float32 seed 0"]
    assert cells[:2] == ["baseline", "close 2.0e-07"] and cells[2].startswith("DIVERGED")
    assert "from the float64 trajectory" in out


def test_equal_losses_with_different_final_parameters_are_not_called_exact(tmp_path, capsys):
    a = results(tmp_path, "a", trajectory())
    b = results(tmp_path, "b", trajectory(params={"w": torch.tensor([[1.0, 2.0], [3.0, 4.0 + 4e-12]], dtype=torch.float64)}))
    status, out, _ = run_compare(capsys, a, b, "--no-plots")
    assert status == 0
    assert matrix(out)["mlp.nn float64 seed 0"] == ["baseline", "close (params)"]
    assert "losses bitwise equal, final parameters not" in out


def test_each_device_of_a_results_directory_is_its_own_column(tmp_path, capsys):
    a = results(tmp_path, "torch213", trajectory())
    b = results(tmp_path, "gpu", trajectory(), trajectory(device="cuda", losses=perturbed(BASE, 2e-7)))
    status, out, _ = run_compare(capsys, a, b, "--no-plots")
    assert status == 0
    assert matrix(out)["run"] == ["torch213:cpu", "gpu:cpu", "gpu:cuda"]
    assert matrix(out)["mlp.nn float64 seed 0"] == ["baseline", "exact", "close 2.0e-07"]


def test_runs_are_matched_by_variant_dtype_seed_steps_and_hyperparameters(tmp_path, capsys):
    a = results(tmp_path, "a", trajectory(), trajectory(seed=1), trajectory(variant="poly.nn"))
    b = results(tmp_path, "b", trajectory(), trajectory(hyperparameters={"lr": 2e-4}),
                trajectory(losses=BASE[:30]), file="gw0.json")
    status, out, _ = run_compare(capsys, a, b, "--no-plots")
    assert status == 0
    assert matrix(out)["mlp.nn float64 seed 0"] == ["baseline", "exact"]
    assert matrix(out)["mlp.nn float64 seed 1"] == ["baseline", "-"]
    assert matrix(out)["mlp.nn float64 seed 0 30 steps"] == ["-", "(no baseline)"]
    assert matrix(out)["mlp.nn float64 seed 0 lr=0.0002"] == ["-", "(no baseline)"]
    assert matrix(out)["poly.nn float64 seed 0 500 steps lr=0.0001"] == ["baseline", "-"]


def test_worker_files_of_one_directory_are_merged_and_duplicates_must_agree(tmp_path, capsys):
    a = results(tmp_path, "a", trajectory(), trajectory(seed=1))
    b = tmp_path / "b"
    save_trajectories(b / "gw0.json", [trajectory()])
    save_trajectories(b / "gw1.json", [trajectory(), trajectory(seed=1)])
    status, out, _ = run_compare(capsys, a, b, "--no-plots")
    assert status == 0
    assert matrix(out)["mlp.nn float64 seed 1"] == ["baseline", "exact"]

    save_trajectories(b / "gw2.json", [trajectory(losses=perturbed(BASE, 1e-12))])
    status, out, _ = run_compare(capsys, a, b, "--no-plots")
    assert status == 1
    assert "nondeterministic within one results directory" in out


def test_a_single_results_file_from_run_out_is_accepted(tmp_path, capsys):
    save_trajectories(tmp_path / "old.json", [trajectory()])
    save_trajectories(tmp_path / "new.json", [trajectory()])
    status, out, _ = run_compare(capsys, tmp_path / "old.json", tmp_path / "new.json", "--no-plots")
    assert status == 0
    assert out.splitlines()[-1] == "nothing diverged beyond the policy"
    assert matrix(out)["mlp.nn float64 seed 0"] == ["baseline", "exact"]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "no such directory or file"),
        (lambda d: d.mkdir(), "no results (*.json) in this directory"),
        (lambda d: (d.mkdir(), (d / "main.json").write_text('{"schema": 1, "traj')), "not readable JSON"),
        (lambda d: (d.mkdir(), (d / "main.json").write_text("[1, 2]")), "not a results file"),
        (lambda d: (d.mkdir(), (d / "main.json").write_text('{"schema": 7, "trajectories": []}')), "schema 7"),
        (lambda d: (d.mkdir(), (d / "main.json").write_text('{"schema": 1, "trajectories": [{"seed": 0}]}')),
         "trajectory 0 is malformed"),
        (lambda d: (d.mkdir(), (d / "main.json").write_text('{"schema": 1, "trajectories": []}')), "no trajectories"),
    ],
    ids=["missing", "empty", "corrupt", "not-results", "schema", "malformed", "no-trajectories"],
)
def test_bad_input_exits_2_with_a_one_line_error_naming_the_path(tmp_path, capsys, setup, message):
    good = results(tmp_path, "good", trajectory())
    bad = tmp_path / "bad"
    setup(bad)
    status, out, err = run_compare(capsys, good, bad)
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert str(bad) in err and message in err


RECORDING_TESTS = textwrap.dedent("""
    def test_a(cached_run):
        cached_run("poly.nn", steps=3, threads=1)

    def test_b(cached_run):
        cached_run("poly.tensor", steps=4, threads=1, dtype="float64")
        cached_run("poly.nn", steps=3, threads=1)  # shared: recorded once
""")


def _record(pytester, out):
    return pytester.runpytest(*PYTESTER_ARGS, "--record-trajectories", str(out))


def test_record_trajectories_writes_the_sessions_shared_runs_and_replaces_only_its_own_files(pytester):
    """The option tox passes: the runs of cached_run land in DIR/main.json at the end of the
    session (DIR/<worker>.json under xdist); an earlier session's recording is removed first, and
    nothing else in DIR is touched."""
    from reference.testing.recording import RECORDED_BY

    pytester.makepyfile(RECORDING_TESTS)
    out = pytester.path / "results" / "env"
    save_trajectories(out / "gw7.json", [trajectory()], recorded_by=RECORDED_BY)  # an earlier -n 8
    (out / "junit.xml").write_text("<testsuites/>")  # tox's --junitxml, not a results file
    result = _record(pytester, out)
    result.assert_outcomes(passed=2)
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "main.json"]
    assert (out / "junit.xml").read_text() == "<testsuites/>"
    recorded = [t for t, _ in read_trajectories(out / "main.json")]
    assert sorted((t.variant, t.dtype, t.steps) for t in recorded) == [("poly.nn", "float32", 3), ("poly.tensor", "float64", 4)]
    assert all(t.environment.get("cpu_model") for t in recorded)
    # what compare needs to name where two recordings part: state fingerprints, the first steps' op traces
    assert all(len(t.state_digests) == t.steps + 1 and t.trace for t in recorded)


def test_record_trajectories_creates_a_directory_that_does_not_exist_yet(pytester):
    """A tox env's first run: results/<env>/ is not there yet (this raised UnboundLocalError and
    ended the session with INTERNALERROR on edd2dd6)."""
    pytester.makepyfile(RECORDING_TESTS)
    out = pytester.path / "results" / "new-env"
    result = _record(pytester, out)
    result.assert_outcomes(passed=2)
    assert sorted(p.name for p in out.iterdir()) == ["main.json"]


@pytest.mark.parametrize("theirs", ["main.json", "gw0.json", "baseline.json"])
def test_record_trajectories_refuses_a_directory_holding_results_it_did_not_write(pytester, theirs):
    """Reproducer: `pytest --record-trajectories DIR` deleted main.json / gw*.json the user had in DIR."""
    pytester.makepyfile(RECORDING_TESTS)
    out = pytester.path / "mine"
    save_trajectories(out / theirs, [trajectory()])  # e.g. from `python -m reference run --out`
    before = (out / theirs).read_bytes()
    result = _record(pytester, out)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and f"holds results files this option did not write ({theirs})" in errors[0]
    assert "Choose a new or empty directory" in errors[0]
    assert [p.name for p in out.iterdir()] == [theirs] and (out / theirs).read_bytes() == before


def test_record_trajectories_refuses_a_file_in_place_of_the_directory(pytester):
    pytester.makepyfile(RECORDING_TESTS)
    a_file = pytester.path / "results.json"
    a_file.write_text("mine")
    result = _record(pytester, a_file)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("is a file, not a directory" in line for line in result.stderr.lines)
    assert a_file.read_text() == "mine"


def test_each_xdist_worker_records_to_its_own_file(tmp_path):
    from reference.testing.recording import record_trajectories

    class WorkerConfig:
        workerinput = {"workerid": "gw3"}

        def getoption(self, name):
            assert name == "--record-trajectories"
            return str(tmp_path)

    record_trajectories(WorkerConfig(), [trajectory()])
    assert [p.name for p in tmp_path.iterdir()] == ["gw3.json"]
    assert json.loads((tmp_path / "gw3.json").read_text())["schema"] == 1


def test_recorded_digests_of_the_final_parameters_decide_exact(tmp_path, capsys):
    """Recordings keep the final parameters as digests; a full-parameter file of the same run
    (python -m reference run --out) compares exact with it, a one-ulp change does not."""
    save_trajectories(tmp_path / "full" / "main.json", [trajectory()], full_params=True)
    save_trajectories(tmp_path / "recorded" / "gw0.json", [trajectory()])
    nudged = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).nextafter(torch.tensor(9.0))
    save_trajectories(tmp_path / "nudged" / "gw0.json", [trajectory(params={"w": nudged})])
    assert json.loads((tmp_path / "recorded" / "gw0.json").read_text())["trajectories"][0]["params"] == {}
    status, out, _ = run_compare(capsys, tmp_path / "full", tmp_path / "recorded", tmp_path / "nudged", "--no-plots")
    assert status == 0
    assert matrix(out)["mlp.nn float64 seed 0"] == ["baseline", "exact", "close (params)"]
    assert "losses bitwise equal, final parameters not" in out


# --- exit status: 0 / 1 only for a judgement made ------------------------------------------------

def test_sources_that_share_no_run_exit_2_with_one_line_not_nothing_diverged(tmp_path, capsys):
    """Reproducer: two sides with no run in common exited 0, "nothing diverged", 0 cells compared."""
    a = results(tmp_path, "a", trajectory(seed=0))
    b = results(tmp_path, "b", trajectory(seed=1), trajectory(variant="poly.nn"))
    status, out, err = run_compare(capsys, a, b, "--no-plots")
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "nothing to compare: a (the baseline) and b share no run" in err


def test_a_single_column_exits_2_saying_to_give_two(tmp_path, capsys):
    status, out, err = run_compare(capsys, results(tmp_path, "a", trajectory()), "--no-plots")
    assert status == 2 and out == ""
    assert "single column" in err and "give two or more" in err


def test_an_unwritable_plots_folder_is_a_warning_and_the_matrix_and_verdict_stand(tmp_path, capsys):
    """Reproducer: compare exited 1 with a traceback and no matrix when artifacts/compare could not be made."""
    a = results(tmp_path, "torch213", trajectory())
    b = results(tmp_path, "torch214", trajectory(losses=perturbed(BASE, 1e-3, from_step=7)))
    blocker = tmp_path / "artifacts"
    blocker.write_text("a file where the plots folder should go")
    status, out, err = run_compare(capsys, a, b, "--plots", blocker / "compare")
    assert status == 1  # the judgement: diverged
    assert matrix(out)["mlp.nn float64 seed 0"] == ["baseline", "DIVERGED @7 1.0e-03"]
    assert err.strip().splitlines() == [err.strip()] and err.startswith("warning: no plots: cannot write in")
    assert blocker.read_text() == "a file where the plots folder should go"


@pytest.mark.environment
def test_environment_keys_that_differ_between_columns_are_printed_under_the_matrix(tmp_path, capsys):
    from dataclasses import replace

    from reference.harness.environment import describe

    # the ambient steering variables cleared: the day's CI configuration sets some (hermetic)
    here = {**describe(), "env": {}}
    other = {**here, "cpu_model": "Intel(R) Xeon(R) Platinum 8480+", "env": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}}
    a = results(tmp_path, "hostA", replace(trajectory(), environment={**here, "threads": 1}))
    b = results(tmp_path, "hostB", replace(trajectory(), environment={**other, "threads": 1}))
    c = results(tmp_path, "old", trajectory())  # written before the environment was recorded
    status, out, _ = run_compare(capsys, a, b, c, "--no-plots")
    assert status == 0
    section = out[out.index("environment (what decides the bits"):]
    assert f"hostB: cpu_model: hostA {here['cpu_model']}, hostB Intel(R) Xeon(R) Platinum 8480+" in section
    assert "hostB: env MKL_ENABLE_INSTRUCTIONS: hostA unset, hostB AVX2" in section
    assert "old: environment: not recorded for old" in section


def test_html_report_shows_each_diverged_cells_curves_first_step_and_column_environments(tmp_path, capsys):
    from report_page import Page

    a = results(tmp_path, "torch213", trajectory())
    b = results(tmp_path, "torch214", trajectory(losses=perturbed(BASE, 0.2, from_step=43), torch_version="2.14.1"))
    page_path = tmp_path / "report" / "compare.html"
    status, out, _ = run_compare(capsys, a, b, "--no-plots", "--html", page_path)
    assert status == 1 and f"report: {page_path}" in out
    page = Page(page_path.read_text())
    row = "mlp.nn float64 seed 0"
    assert page.cells[(row, "torch213")] == "baseline" and page.cells[(row, "torch214")] == "diverged"
    assert page.sections[(row, "torch214")]["first-difference"] == "43"
    assert page.sections[(row, "torch214")]["first-bad-step"] == "43"
    assert (row, "torch214") in page.svgs
    assert page.environment["torch"] == {"torch213": "2.13.0+cpu", "torch214": "2.14.1"}
    assert page.verdict_ok == "false" and page.external == []
