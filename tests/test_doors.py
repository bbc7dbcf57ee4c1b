"""One verdict through every door: the same pair of trajectories gets the same status from the golden
fixture's judgement (judge_golden), from `compare` of two recordings, and from `check --out` +
`compare`; and the text, HTML and picture of a cell say the same status and numbers."""
from __future__ import annotations

import dataclasses

import pytest

import reference
from reference.cli import main
from reference.harness.trajectory import save_trajectories
from reference.injections import INJECTIONS
from reference.judge import goldens
from reference.judge.goldens import GoldenKey, judge_golden
from reference.judge.recordings import compare_matrix, load_source
from reference.judge.status import Status
from reference.report import html, plots, text

VARIANT, DTYPE = "poly.nn", "float32"
KEY = GoldenKey(VARIANT, DTYPE, 0)
MSE = "mse 'sum' -> 'mean'"


def _run(dtype=DTYPE):
    return reference.run(VARIANT, dtype=dtype, steps=KEY.steps, threads=1, record_state=True)


@pytest.fixture(scope="module")
def pair_of(tmp_path_factory):
    """case -> (reference run, its float64 partner, the other run)."""
    base, base64 = _run(), _run("float64")
    with INJECTIONS[MSE]():
        changed = _run()
    drift = dataclasses.replace(base, losses=[x * (1 + 2e-7) if t >= 5 else x for t, x in enumerate(base.losses)])
    return {"exact": (base, base64, base), "close": (base, base64, drift), "diverged": (base, base64, changed)}


def _through_the_golden_fixture(tmp_path, monkeypatch, base, base64, now) -> Status:
    monkeypatch.setenv(goldens.GOLDENS_DIR_ENV, str(tmp_path / "goldens"))
    goldens.write(KEY, base)
    goldens.write(GoldenKey(VARIANT, "float64", 0), base64)
    return judge_golden(KEY, runner=lambda *args, **kwargs: now).verdict.status


def _through_compare(tmp_path, base, base64, now) -> Status:
    save_trajectories(tmp_path / "a" / "main.json", [base, base64])
    save_trajectories(tmp_path / "b" / "main.json", [now])
    matrix = compare_matrix([load_source(tmp_path / "a", "a"), load_source(tmp_path / "b", "b")], retrace=False)
    (row,) = [r for r in matrix.rows if r.label == KEY.label]
    return row.cells[1].status


@pytest.mark.parametrize("case", ["exact", "close", "diverged"])
def test_a_pair_has_one_status_through_the_golden_fixture_and_compare(case, pair_of, tmp_path, monkeypatch):
    base, base64, now = pair_of[case]
    fixture = _through_the_golden_fixture(tmp_path, monkeypatch, base, base64, now)
    compared = _through_compare(tmp_path, base, base64, now)
    assert fixture is compared is Status(case)


def test_check_out_then_compare_says_what_the_golden_fixture_says(tmp_path, monkeypatch, capsys, pair_of):
    """Two check runs (unchanged, and under an injected change) recorded with --out and compared: the
    cell's status is the golden fixture's for the same two runs."""
    base, base64, changed = pair_of["diverged"]
    monkeypatch.setenv(goldens.GOLDENS_DIR_ENV, str(tmp_path / "goldens"))
    goldens.write(KEY, base)
    goldens.write(GoldenKey(VARIANT, "float64", 0), base64)
    args = ["check", "-q", "--no-properties", "--variants", VARIANT]
    assert main([*args, "--out", str(tmp_path / "before")]) == 0
    with INJECTIONS[MSE]():
        assert main([*args, "--out", str(tmp_path / "after")]) == 1
    capsys.readouterr()
    status = main(["compare", str(tmp_path / "before"), str(tmp_path / "after"), "--no-plots", "--no-retrace"])
    out = capsys.readouterr().out
    assert status == 1 and f"DIVERGED beyond the policy in {VARIANT}: {KEY.label} [after]" in out
    assert judge_golden(KEY, runner=lambda *a, **k: changed).verdict.status is Status.DIVERGED


def test_the_text_the_page_and_the_picture_of_a_cell_say_the_same_status_and_numbers(pair_of, tmp_path):
    base, base64, changed = pair_of["diverged"]
    save_trajectories(tmp_path / "a" / "main.json", [base, base64])
    save_trajectories(tmp_path / "b" / "main.json", [changed])
    matrix = compare_matrix([load_source(tmp_path / "a", "a"), load_source(tmp_path / "b", "b")], retrace=False)
    (row,) = [r for r in matrix.rows if r.label == KEY.label]
    cell = row.cells[1]
    said = cell.text
    assert said.startswith("DIVERGED @0 ")
    assert any(line.endswith(said) for line in text.render(matrix) if line.startswith(KEY.label))
    page = html.render(matrix)
    assert 'data-status="diverged">' in page and f"<h3>{KEY.label} [b]: {said}</h3>" in page
    fig = plots.figure(row.label, "b", cell)
    assert fig.title == f"{KEY.label} [b]: {said}" and fig.first_bad == cell.verdict.first_bad_step
    assert f">{fig.title}</text>" in plots.svg(fig)
    pytest.importorskip("matplotlib", reason="the PNG needs matplotlib: pip install -e '.[plot]'")
    import matplotlib.figure

    titles = []
    original = matplotlib.figure.Figure.suptitle
    try:
        matplotlib.figure.Figure.suptitle = lambda self, t, **kw: titles.append(t) or original(self, t, **kw)
        assert plots.png(fig, tmp_path / "cell.png")
    finally:
        matplotlib.figure.Figure.suptitle = original
    assert titles == [fig.title]
