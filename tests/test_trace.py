"""Op traces name the operation that changed (reference/trace/): each injected change is localized
to the right op and phase, alignment survives inserted ops, identical runs report no differing op."""
from __future__ import annotations

import contextlib
import functools
import copy
import dataclasses
import json

import pytest
import torch

import reference
from reference import trace
from reference.harness.state import first_state_difference
from reference.harness.trajectory import Trajectory, save_trajectories
from reference.injections import INJECTIONS, patched
from reference.judge.goldens import GoldenKey
from reference.judge.locate import explain_golden_failure, traced_run
from torch_skips import skip_unless_clamp_passes_gradient_at_zero


def _traced(variant_id, step=0, **kwargs):
    return traced_run(variant_id, step, threads=1, **kwargs)


def test_identical_runs_report_no_differing_op():
    a, b = _traced("mlp.optim", 1), _traced("mlp.optim", 1)
    finding = trace.localize(a, b)
    assert not finding.found and finding.line() == "no differing op in the traced steps (step 1)"


def test_trace_records_forward_backward_and_update_in_order():
    t = _traced("mlp.autograd", 0)
    ops = t["steps"]["0"]
    phases = [op[1] for op in ops]
    assert phases == sorted(phases, key=trace.PHASES.index), phases
    names = {p: [op[0] for op in ops if op[1] == p] for p in trace.PHASES}
    assert names["forward"][:2] == ["aten::mm", "aten::clamp"]
    assert "aten::where.self" in names["backward"]  # clamp's backward
    assert names["update"][-2:] == ["aten::zero_", "aten::zero_"]
    assert not {op[0] for op in ops} & {"aten::t", "aten::detach", "aten::view", "aten::expand"}, "views are left out"
    assert [e[0] for e in t["initial"]] == ["x", "y", "w1", "w2"]


def test_hand_written_backward_is_labelled_backward_before_the_update():
    ops = _traced("mlp.tensor", 0)["steps"]["0"]
    backward = [op[0] for op in ops if op[1] == "backward"]
    update = [op[0] for op in ops if op[1] == "update"]
    assert "aten::mm" in backward and "aten::sub_.Tensor" in update


@contextlib.contextmanager
def _changed_data_draw():
    """The first torch.randn of the run (the data x) drawn one ulp off."""
    original = torch.randn
    calls = []

    def randn(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append(1)
        return torch.nextafter(out, torch.full_like(out, float("inf"))) if len(calls) == 1 else out

    with patched(torch, "randn", randn):
        yield


CASES = [
    # (injected change, variant, step, the line must start with)
    ("adam eps 1e-8 -> 1e-6", "mlp.optim", 0, "first differing op: aten::add_.Tensor at step 0 (update)"),
    ("rmsprop alpha 0.99 -> 0.9", "poly.optim", 0,
     "first differing op: aten::addcmul_ at step 0 (update)"),  # square_avg is 0 at step 0: mul_(alpha) agrees
    ("mse 'sum' -> 'mean'", "mlp.optim", 0, "first differing op: aten::mse_loss at step 0 (forward)"),
    # the step of the first exact zero depends on the CPU's kernel path: See Note [exact zeros in float32]
    ("clamp(min=0) grad at 0: 1 -> 0 (relu's)", "mlp.autograd", None,
     "first differing op: aten::threshold_backward at step {step} (backward)"),
    ("float32 matmul at TF32 precision", "mlp.nn", 0, "first differing op: aten::addmm at step 0 (forward)"),
    ("Linear init kaiming a=sqrt(5) -> 0", "mlp.optim", 0, "first difference: initial state (model.0.weight "),
    ("data draw x one ulp off", "mlp.autograd", 0, "first difference: initial state (x "),
]


@pytest.mark.parametrize("change, variant_id, step, expected", CASES, ids=[c[0] for c in CASES])
def test_injected_change_is_localized_to_its_op_and_phase(change, variant_id, step, expected):
    if step is None:
        step = _first_exact_zero_step()
        expected = expected.format(step=step)
    baseline = _traced(variant_id, step)
    inject = _changed_data_draw if change == "data draw x one ulp off" else INJECTIONS[change]
    with inject():
        now = _traced(variant_id, step)
    line = trace.localize(baseline, now).line()
    assert line.startswith(expected), line
    if line.startswith("first differing op"):
        assert "(the origin)" in line, line


@functools.cache
def _first_exact_zero_step() -> int:
    """The first step whose backward meets an exact zero in clamp's input (float32, seed 0): the step
    whose update relu's gradient at 0 changes first, found from the state, not the losses (See
    Note [the state parts before the loss]: under another kernel path the loss may part steps later)."""
    skip_unless_clamp_passes_gradient_at_zero("(the tox results compare it against 2.13's)")
    plain = reference.run("mlp.autograd", steps=300, threads=1, record_state=True).state_digests
    with INJECTIONS["clamp(min=0) grad at 0: 1 -> 0 (relu's)"]():
        relu = reference.run("mlp.autograd", steps=300, threads=1, record_state=True).state_digests
    first = first_state_difference(plain, relu)
    assert first is not None, "no exact zero in 300 steps: the clamp case tests nothing"
    return first - 1


def test_clamp_change_names_clamps_backward_as_the_baselines_counterpart():
    step = _first_exact_zero_step()
    baseline = _traced("mlp.autograd", step)
    with INJECTIONS["clamp(min=0) grad at 0: 1 -> 0 (relu's)"]():
        now = _traced("mlp.autograd", step)
    assert "baseline ran aten::where.self" in trace.localize(baseline, now).line()
    # step 0 has no exact zero: relu's ops compute clamp's values, a rename is not a difference
    with INJECTIONS["clamp(min=0) grad at 0: 1 -> 0 (relu's)"]():
        renamed = _traced("mlp.autograd", 0)
    assert trace.localize(_traced("mlp.autograd", 0), renamed).line().startswith("no differing op")


def _fake_op(digest, shape=(3,)):
    return ["aten::inserted_op", "forward", [list(shape)], ["float32"], [[digest, 1.0, 1.0, 1.0]], []]


def test_alignment_survives_an_inserted_op():
    a = _traced("mlp.optim", 0)
    b = copy.deepcopy(a)
    b["steps"]["0"].insert(0, _fake_op(b["steps"]["0"][3][4][0][0]))  # recomputes a value a has
    assert trace.localize(a, b).line().startswith("no differing op")
    # an inserted op with new values ahead of a real change: the change is still named
    with INJECTIONS["adam eps 1e-8 -> 1e-6"]():
        c = _traced("mlp.optim", 0)
    c["steps"]["0"].insert(0, _fake_op("0123456789abcdef"))
    line = trace.localize(a, c).line()
    assert line.startswith("first differing op: aten::add_.Tensor at step 0 (update)"), line


def test_a_changed_mask_from_identical_inputs_is_named_as_the_origin_of_the_floats_it_changes():
    """torch 2.14's clamp backward (seen in the tox results): `gt` where 2.13 ran `ge`, a bool mask
    that differs only at exact zeros, feeding the same `where`. The mask op is the origin."""
    step = _first_exact_zero_step()
    a = _traced("mlp.autograd", step)
    b = copy.deepcopy(a)
    ops = b["steps"][str(step)]
    i = next(i for i, op in enumerate(ops) if op[0] == "aten::ge.Scalar")
    mask, where = ops[i], ops[i + 1]
    assert where[0] == "aten::where.self" and mask[4][0][0] in where[5], (mask, where)
    old_mask = mask[4][0][0]
    mask[0], mask[4][0][0] = "aten::gt.Scalar", "0123456789abcdef"
    where[5] = ["0123456789abcdef" if d == old_mask else d for d in where[5]]
    where[4][0] = ["fedcba9876543210", where[4][0][1] + 1.0, where[4][0][2] + 1.0, where[4][0][3]]
    line = trace.localize(a, b).line()
    assert line.startswith(f"first differing op: aten::gt.Scalar at step {step} (backward)"), line
    assert "baseline ran aten::ge.Scalar; inputs identical (the origin)" in line, line
    assert "the first floats it changes are aten::where.self's" in line, line


def test_beyond_the_rounding_allowance_and_within_it():
    a = _traced("mlp.optim", 0)
    b = copy.deepcopy(a)
    op = next(o for o in b["steps"]["0"] if o[0] == "aten::addmm")
    op[4][0][0] = "ffffffffffffffff"
    op[4][0][1] = op[4][0][1] + op[4][0][2] * 1e-7  # a rounding-sized move
    assert trace.localize(a, b, rtol=trace.rounding_allowance("float32")).line().startswith("no differing op")
    assert trace.localize(a, b).line().startswith("first differing op: aten::addmm at step 0 (forward)")
    op[4][0][1] = op[4][0][1] + op[4][0][2] * 1e-2
    line = trace.localize(a, b, rtol=trace.rounding_allowance("float32")).line()
    assert line.startswith("first differing op: aten::addmm at step 0 (forward)") and "rounding allowance" in line


def test_trace_off_leaves_the_trajectory_without_a_trace_and_old_json_loads():
    t = reference.run("poly.optim", steps=2, threads=1)
    assert t.trace is None
    d = t.to_json_dict()
    d.pop("trace")
    assert Trajectory.from_json_dict(d).trace is None
    traced = reference.run("poly.optim", steps=2, threads=1, trace_steps=[1])
    assert traced.losses == t.losses, "tracing changed the run"
    again = Trajectory.from_json_dict(json.loads(json.dumps(traced.to_json_dict())))
    assert trace.localize(traced.trace, again.trace).line().startswith("no differing op")


@pytest.mark.parametrize("variant_id", ["mlp.nn", "mlp.optim"])
def test_state_fingerprints_are_not_in_the_op_trace_they_sit_beside(variant_id):
    """A run recorded for compare keeps both: the fingerprints' own ops must not shift the op indices
    its trace is compared by (a golden's trace was recorded with them too)."""
    with_state = reference.run(variant_id, steps=3, threads=1, trace_steps=[0, 1], record_state=True)
    without = reference.run(variant_id, steps=3, threads=1, trace_steps=[0, 1])
    assert with_state.state_digests and with_state.trace["steps"] == without.trace["steps"]


def test_trace_steps_outside_the_run_are_refused():
    with pytest.raises(ValueError, match=r"trace_steps \[5\] outside the run's steps. Valid choices: 0..1"):
        reference.run("poly.optim", steps=2, threads=1, trace_steps=[5])


def test_dumps_loads_round_trip():
    t = _traced("poly.optim", 0)
    assert trace.loads(trace.dumps(t)) == json.loads(json.dumps(t))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where CUDA is not available")
def test_locate_on_cuda_without_cuda_is_one_line_exit_2(capsys):
    from reference.cli import main

    assert main(["locate", "poly.optim", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err


def test_locate_rejects_an_unknown_injection_naming_the_choices(capsys):
    from reference.cli import main

    assert main(["locate", "poly.optim", "--inject", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--inject 'nope' is not an injection. Valid choices:" in err and "adam eps" in err


def test_locate_prints_the_line_for_an_injection(capsys):
    from reference.cli import main

    assert main(["locate", "poly.optim", "--inject", "rmsprop alpha 0.99 -> 0.9"]) == 1
    assert capsys.readouterr().out.startswith("first differing op: aten::addcmul_ at step 0 (update)")


def test_explain_golden_failure_names_the_op_against_the_kept_trace(tmp_path, monkeypatch):
    key = GoldenKey("mlp.optim", "float32", 0)
    if not key.trace_path.is_file():
        pytest.fail(f"{key.trace_path} missing: pytest --update-goldens -k mlp.optim writes it")
    # the kept trace, as this host records it (another CPU path may start from other draws, which
    # the line then names as an initial-state difference)
    from reference.judge import goldens

    monkeypatch.setenv("TES_GOLDENS_DIR", str(tmp_path))
    goldens.write(key, reference.run(key.variant, dtype=key.dtype, steps=key.steps, threads=1, record_state=True))
    goldens.write_trace(key, reference.run)
    state, line = explain_golden_failure(key, {"threads": 1})
    assert state == "the run's losses and state fingerprints equal the golden's at every step"
    assert line.startswith("no differing op in the traced steps"), line
    with INJECTIONS["adam eps 1e-8 -> 1e-6"]():
        state, line = explain_golden_failure(key, {"threads": 1, "device": "cpu"})
    # eps enters the first update: the state parts entering step 1 (its loss may stay bitwise equal longer)
    assert state.startswith("state: the state first differs entering step 1, the losses at step "), state
    assert line.startswith("first differing op: aten::add_.Tensor at step 0 (update)"), line


def _compare_lines(root, *names, **kwargs) -> list[str]:
    from reference.judge.recordings import compare_matrix, load_source
    from reference.report.text import render

    return [line.strip() for line in render(compare_matrix([load_source(root / n, n) for n in names], **kwargs))]


def test_compare_prints_the_line_for_a_cell_that_is_not_exact(tmp_path):
    base = reference.run("poly.optim", steps=3, threads=1, trace_steps=[0, 1])
    with INJECTIONS["rmsprop alpha 0.99 -> 0.9"]():
        now = reference.run("poly.optim", steps=3, threads=1, trace_steps=[0, 1])
    save_trajectories(tmp_path / "a" / "main.json", [base])
    save_trajectories(tmp_path / "b" / "main.json", [now])
    lines = _compare_lines(tmp_path, "a", "b")
    located = [line for line in lines if "first differing op" in line]
    assert located and located[0].startswith("first differing op: aten::addcmul_ at step 0 (update)"), lines


# --- compare across versions: the steps where two columns part (reference/judge/locate.py) -----------

CLAMP = "clamp(min=0) grad at 0: 1 -> 0 (relu's)"  # stands in for torch 2.14's clamp backward


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """Two recordings of mlp.autograd float32 seed 0, as two torch versions would record them: `a`
    this torch (equal to a golden written here, so it records only its first steps' trace), `b`
    under the clamp change (it leaves the golden at the first exact zero and records that step)."""
    from reference.judge import goldens
    from reference.judge.locate import record_departures

    root = tmp_path_factory.mktemp("versions")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TES_GOLDENS_DIR", str(root / "goldens"))
        plain = reference.run("mlp.autograd", threads=1, trace_steps=[0, 1], record_state=True)
        goldens.write(GoldenKey("mlp.autograd", "float32", 0), plain)
        save_trajectories(root / "a" / "main.json", record_departures([plain]))
        with INJECTIONS[CLAMP]():
            changed = reference.run("mlp.autograd", threads=1, trace_steps=[0, 1], record_state=True)
            save_trajectories(root / "b" / "main.json", record_departures([changed]))
    return root, plain, changed


_compare = _compare_lines


def test_recording_keeps_the_trace_of_the_step_where_a_run_parts_from_its_golden(two_versions):
    from reference.judge.recordings import load_source

    root, plain, changed = two_versions
    step = _first_exact_zero_step()
    (a,), (b,) = (list(load_source(root / n, n).runs.values()) for n in "ab")
    assert sorted(a.trace["steps"], key=int) == ["0", "1"] and "departs_from_golden" not in a.trace
    assert b.trace["departs_from_golden"] == step
    assert sorted(b.trace["steps"], key=int) == ["0", "1", str(step)]
    assert b.losses == changed.losses and a.losses == plain.losses


def test_compare_names_clamps_backward_where_versions_part_rerunning_the_other_here(two_versions):
    root, _, _ = two_versions
    step = _first_exact_zero_step()
    lines = _compare(root, "a", "b")
    located = [line for line in lines if line.startswith("first differing op")]
    assert located and located[0].startswith(
        f"first differing op: aten::threshold_backward at step {step} (backward)"), lines
    assert "(the origin)" in located[0], located[0]
    origin = next(line for line in lines if line.startswith("(the state first differs entering step"))
    assert origin.startswith(f"(the state first differs entering step {step + 1}"), origin
    assert f"a re-run here on torch {torch.__version__}" in origin and "b recorded" in origin, origin
    assert f"losses and state bitwise equal through step {step}, same start state" in origin, origin


def test_compare_without_retracing_says_which_trace_is_missing(two_versions):
    root, _, _ = two_versions
    step = _first_exact_zero_step()
    lines = _compare(root, "a", "b", retrace=False)
    assert not any(line.startswith("first differing op") for line in lines), lines
    assert any(line.startswith(f"op not located: the state first differs entering step {step + 1}") and
               f"a has no op trace of step {step} (re-running is off)" in line for line in lines), lines


def test_compare_refuses_to_rerun_a_column_this_torch_does_not_reproduce(two_versions, tmp_path):
    root, plain, _ = two_versions
    other = dataclasses.replace(plain, losses=[*plain.losses[:3], plain.losses[3] * 2, *plain.losses[4:]])
    save_trajectories(tmp_path / "other" / "main.json", [other])  # as another torch's: loss 3 differs
    (tmp_path / "b").symlink_to(root / "b")
    text = "\n".join(_compare(tmp_path, "other", "b"))
    assert "first differing op" not in text, text
    step = _first_exact_zero_step()
    assert (f"op not located: the state first differs entering step {step + 1}, the losses at step 3; other has no "
            f"op trace of step 3, and torch {torch.__version__} here does not reproduce its run (they differ from "
            "step 3)") in text, text


@pytest.mark.slow
def test_torch213_to_torch214_is_clamps_backward_at_the_first_exact_zero_from_the_tox_results():
    """End to end on the real recordings (`tox -e torch213,torch214`, or `pytest --record-trajectories
    results/torchNNN` under each torch): compare names clamp's backward at the step before the first
    loss the two versions disagree on. Run it under torch 2.13: the 2.14 recording keeps the trace
    of the steps where it leaves the goldens, the 2.13 column (equal to them) is re-run here."""
    from pathlib import Path

    from reference.judge.recordings import compare_matrix, load_source
    from reference.report.text import render

    if not torch.__version__.startswith("2.13."):
        pytest.skip(f"re-runs the torch 2.13 column here: run it under torch 2.13, not {torch.__version__}")
    root = Path(__file__).resolve().parent.parent / "results"
    missing = [n for n in ("torch213", "torch214") if not (root / n).is_dir()]
    if missing:
        pytest.skip(f"no recorded {', '.join(missing)} under {root} (tox -e torch213,torch214)")
    sources = [load_source(root / n, n) for n in ("torch213", "torch214")]
    runs = [next(t for t in s.runs.values() if (t.variant, t.dtype, t.seed, t.steps) == ("mlp.autograd", "float32", 0, 500))
            for s in sources]
    assert runs[0].torch_version.startswith("2.13.") and runs[1].torch_version.startswith("2.14."), runs
    k = next(i for i, (a, b) in enumerate(zip(runs[0].losses, runs[1].losses)) if a != b)
    lines = render(compare_matrix(sources))
    head = next(i for i, line in enumerate(lines) if line[2:].startswith("mlp.autograd float32 seed 0 [torch214]:"))
    # torch 2.14.1's clamp backward masks with `gt` where 2.13 used `ge`: the gradient at exactly 0
    located = next(line.strip() for line in lines[head + 1:head + 4] if "first differing op" in line)
    assert located.startswith("first differing op: aten::gt.Scalar at step "), lines[head:head + 4]
    assert int(located.split(" at step ")[1].split()[0]) < k, located  # at or before the losses part
    assert "baseline ran aten::ge.Scalar; inputs identical (the origin)" in located, located
    assert "aten::where.self" in located, located


def test_a_departure_that_cannot_be_rerun_leaves_the_recorded_run_as_it_was(two_versions, monkeypatch):
    from reference.judge import locate as departure

    root, _, changed = two_versions
    step = _first_exact_zero_step()
    monkeypatch.setenv("TES_GOLDENS_DIR", str(root / "goldens"))
    calls = []

    def boom(t, steps, runner=None):
        calls.append(steps)
        raise RuntimeError("the re-run failed")

    monkeypatch.setattr(departure, "rerun_traced", boom)
    before = copy.deepcopy(changed)
    assert departure.record_departure(changed) is changed
    assert calls == [[step]], "the re-run was not attempted"
    # returned as it was, not changed in place
    assert changed.losses == before.losses and changed.trace == before.trace
    assert changed.params.keys() == before.params.keys()
    assert all(torch.equal(changed.params[n], before.params[n]) for n in before.params)


def test_a_cell_neither_column_traced_says_so_instead_of_naming_no_op():
    from reference.judge.locate import locate_cell

    plain = reference.run("poly.tensor", steps=5, threads=1)
    assert plain.trace is None  # as `run --out` / `check --out` save it
    other = dataclasses.replace(plain, losses=[*plain.losses[:2], plain.losses[2] * 2, *plain.losses[3:]])
    lines = locate_cell(plain, other, ("a", "b"))
    assert lines == ["op not located: the losses part at step 2 (step 1); neither column kept an op trace (results "
                     "of `pytest --record-trajectories` keep them)"]
