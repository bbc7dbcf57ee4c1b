"""bisect (reference/bisect/): the search, the boundary's verification, the op, the policy's verdict and
what else moved, over stubbed environments handing back made-up runs (offline, fast); one end-to-end run
over two real releases behind the `bisect` marker (tox -e bisect)."""
from __future__ import annotations

import json

import pytest
import torch

from reference.bisect.search import Search, Unavailable, moved, parting_step
from reference.cli import main
from reference.harness.trajectory import Trajectory

TARGETS = [("mlp.nn", "float32"), ("poly.nn", "float32")]
BASE = [100.0 * 0.97**t for t in range(60)]


def trajectory(variant, dtype, losses, numpy="2.4.6", states=None) -> Trajectory:
    return Trajectory(variant=variant, seed=0, device="cpu", dtype=dtype, steps=len(losses), threads=1,
                      losses=list(losses), params={"w": torch.tensor([1.0, 2.0])}, hyperparameters={},
                      torch_version="x", numpy_version=numpy, python_version="3.11.7", cpu_capability="AVX512",
                      tf32=None, wall_time_s=0.0, environment={"numpy": numpy, "python": "3.11.7"},
                      state_digests=states or [f"{i:08x}" for i in range(len(losses) + 1)])


def changed(losses, from_step, rel=1e-3):
    return [x * (1 + rel) if t >= from_step else x for t, x in enumerate(losses)]


class Stub:
    """An environment handing back made-up runs: `changes` maps a target to (losses, states) here."""

    def __init__(self, label, changes=None, numpy="2.4.6", unavailable=False):
        self.label, self.changes, self.numpy, self.unavailable = label, changes or {}, numpy, unavailable
        self.recorded = self.located = 0

    def record(self, targets):
        if self.unavailable:
            raise Unavailable(f"torch {self.label} has no build for this Python")
        self.recorded += 1
        out = {}
        for target in targets:
            losses, states = self.changes.get(target, (BASE, None))
            out[target] = trajectory(*target, losses, self.numpy, states)
        return out

    def locate(self, variant, dtype, step, against):
        self.located += 1
        line = None if against is None else f"first differing op: aten::stub at step {step} (backward) in {self.label}"
        return {"step": step}, line


def parted(step):
    """A run whose state parts entering `step + 1` and whose losses part later (the Note's case)."""
    states = [f"{i:08x}" for i in range(len(BASE) + 1)]
    states[step + 1:] = [f"f{i:07x}" for i in range(step + 1, len(BASE) + 1)]
    return changed(BASE, step + 5), states


def releases(changes_from: int, n: int = 6, **stub):
    return [Stub(f"2.{i}.0", {TARGETS[0]: parted(20)} if i >= changes_from else {}, **stub) for i in range(n)]


def test_a_single_change_is_found_at_its_release_and_the_boundary_is_run_on_both_sides():
    envs = releases(changes_from=3)
    search = Search(envs, TARGETS)
    first, second = search.run()
    assert (first.last_same, first.first_changed) == ("2.2.0", "2.3.0")
    # both sides of the boundary were run, not inferred from the search's other probes
    assert first.verified and {"2.2.0", "2.3.0"} <= set(search.tested)
    assert envs[2].recorded == 1 and envs[3].recorded == 1
    assert first.first_op == "first differing op: aten::stub at step 20 (backward) in 2.3.0"  # the state's step
    assert second.first_changed is None and second.last_same == "2.5.0"


def test_no_change_runs_the_two_ends_only():
    envs = releases(changes_from=99)
    results = Search(envs, TARGETS).run()
    assert all(r.first_changed is None for r in results)
    assert [e.recorded for e in envs] == [1, 0, 0, 0, 0, 1]


def test_a_change_beyond_the_policy_and_one_of_bits_only_are_told_apart():
    tiny = changed(BASE, 40, rel=1e-12)
    envs = [Stub("2.0.0"), Stub("2.1.0", {TARGETS[0]: parted(20), TARGETS[1]: (tiny, None)})]
    big, small = Search(envs, TARGETS).run()
    assert big.beyond_policy is True and small.beyond_policy is False


def test_a_release_that_cannot_be_installed_is_skipped_and_the_search_goes_on_over_its_neighbours():
    envs = releases(changes_from=3)
    envs[3].unavailable = True
    search = Search(envs, TARGETS)
    first, _ = search.run()
    assert (first.last_same, first.first_changed) == ("2.2.0", "2.4.0")
    assert search.skipped == {"2.3.0": "torch 2.3.0 has no build for this Python"}
    assert "between them, 2.3.0 could not be run (skipped)" in first.notes
    assert not first.verified  # the change lies in 2.3.0 or 2.4.0: the boundary is not exact


def test_a_range_that_is_not_monotonic_is_said_so():
    envs = releases(changes_from=2)
    envs[4].changes = {}  # 2.4.0 computes the good release's bits again
    search = Search(envs, TARGETS, exhaustive=True)
    first, _ = search.run()
    assert first.first_changed is not None
    assert any(note.startswith("not monotonic: ") for note in first.notes), first.notes
    assert [e.recorded for e in envs] == [1] * 6  # --exhaustive runs every one


def test_a_dependency_that_moves_with_torch_is_named_across_the_boundary():
    envs = [Stub("2.0.0", numpy="1.26.4"), Stub("2.1.0", {TARGETS[0]: parted(20)}, numpy="2.4.6")]
    first, second = Search(envs, TARGETS).run()
    assert first.env_changed == {"numpy": ["1.26.4", "2.4.6"]}
    assert second.first_changed is None  # a result with no boundary names nothing


def test_a_release_listed_with_a_local_label_is_the_public_release(monkeypatch):
    """A find-links folder beside the index lists 2.13.0+cpu too: one release, named as --good names it."""
    import subprocess

    from reference.bisect import environments

    listing = "torch (2.14.1)\nAvailable versions: 2.14.1, 2.14.0, 2.13.0+cpu, 2.13.0, 2.12.1, 2.12.0rc1, nonsense\n"
    monkeypatch.setattr(environments.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=listing, stderr=""))
    assert environments.available_releases() == ["2.12.0rc1", "2.12.1", "2.13.0", "2.14.0", "2.14.1"]


def test_interpreters_are_named_by_their_torch_unless_two_hold_the_same(capsys):
    from types import SimpleNamespace

    from reference.cli.bisect import short_labels

    envs = [SimpleNamespace(version=v, python=f"/opt/{i}/bin/python", label=f"/opt/{i}/bin/python (torch {v})")
            for i, v in enumerate(["2.13.0+cpu", "2.14.0", "2.14.0"])]
    assert [e.label for e in short_labels(envs)] == [
        "torch 2.13.0+cpu", "/opt/1/bin/python (torch 2.14.0)", "/opt/2/bin/python (torch 2.14.0)"]
    assert "torch 2.13.0+cpu is /opt/0/bin/python" in capsys.readouterr().err


def test_an_end_of_the_range_that_cannot_run_is_an_error():
    envs = releases(changes_from=3)
    envs[0].unavailable = True
    with pytest.raises(Unavailable, match="2.0.0 cannot be run here .* it is an end of the range"):
        Search(envs, TARGETS).run()


def test_the_step_traced_is_where_the_state_parts_not_the_loss():
    a = trajectory("mlp.nn", "float32", BASE)
    losses, states = parted(20)
    assert parting_step(a, trajectory("mlp.nn", "float32", losses, states=states)) == 20
    assert moved(a, trajectory("mlp.nn", "float32", losses, numpy="2.4.6")) == {}


def test_the_command_writes_the_results_json_the_issue_names(monkeypatch, tmp_path, capsys):
    from reference.cli import bisect as command

    stubs = {s.label: s for s in releases(changes_from=2, n=4)}
    monkeypatch.setattr(command, "Release", lambda version, **kw: stubs[version])
    monkeypatch.setenv("TES_CACHE_DIR", str(tmp_path / "cache"))  # nothing written in the user's cache
    out = tmp_path / "bisect.json"
    status = main(["bisect", "--good", "2.0.0", "--bad", "2.3.0", "--versions", "2.0.0,2.1.0,2.2.0,2.3.0",
                   "--dtype", "float32", "mlp.nn", "poly.nn", "--json", str(out), "--html", str(tmp_path / "b.html")])
    printed = capsys.readouterr().out
    assert status == 1 and "1 of 2 runs changed in the range; every other run keeps its bits" in printed
    data = json.loads(out.read_text())
    assert data["tested"][0] == "2.0.0" and data["tested"][1] == "2.3.0"
    (result,) = [r for r in data["results"] if r["variant"] == "mlp.nn"]
    assert {k: result[k] for k in ("dtype", "last_same", "first_changed", "beyond_policy", "env_changed")} == {
        "dtype": "float32", "last_same": "2.1.0", "first_changed": "2.2.0", "beyond_policy": True, "env_changed": {}}
    assert result["first_op"].startswith("first differing op: aten::stub")
    assert (tmp_path / "b.html").read_text().count('data-status="diverged"') >= 1


@pytest.mark.parametrize("argv, message", [
    (["--good", "2.13.0", "--bad", "2.13.0"], "--good and --bad are both 2.13.0"),
    (["--good", "2.14.1", "--bad", "2.13.0"], "--good 2.14.1 is newer than --bad 2.13.0"),
    (["--good", "2.13.0", "--bad", "2.99.0", "--versions", "2.13.0,2.14.0"], "--bad 2.99.0: not a torch release listed"),
    (["--good", "two", "--bad", "2.14.0"], "--good 'two' is not a version"),
    (["--dtype", "half", "--good", "2.13.0", "--bad", "2.14.0"], "--dtype 'half' is not a choice"),
    (["--python", "/no/such/python", "/no/such/other"], "--python /no/such/python: not an interpreter with torch"),
], ids=["equal", "reversed", "unknown", "not-a-version", "dtype", "interpreter"])
def test_bad_input_is_one_line_with_status_2(capsys, argv, message):
    assert main(["bisect", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_cache_that_cannot_be_written_is_one_line(monkeypatch, tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("TES_CACHE_DIR", str(blocked / "cache"))
    assert main(["bisect", "--good", "2.13.0", "--bad", "2.14.0", "--versions", "2.13.0,2.14.0", "mlp.nn"]) == 2
    assert "cannot be written" in capsys.readouterr().err


@pytest.mark.bisect
def test_two_real_releases_name_the_clamp_change_and_its_op(tmp_path):
    """End to end over the two releases on this machine's disk (tox -e bisect): torch 2.14's clamp gradient
    at 0 (specs/torch_behaviour.toml) parts mlp.autograd from 2.13.0, in clamp's backward mask."""
    out = tmp_path / "bisect.json"
    status = main(["bisect", "--good", "2.13.0", "--bad", "2.14.1", "--versions", "2.13.0,2.14.1", "--installer", "pip",
                   "--dtype", "float32", "mlp.autograd", "mlp.nn", "--json", str(out)])
    data = json.loads(out.read_text())
    by = {r["variant"]: r for r in data["results"]}
    assert status == 1 and by["mlp.autograd"]["first_changed"] == "2.14.1" and by["mlp.nn"]["first_changed"] is None
    assert "aten::gt.Scalar" in by["mlp.autograd"]["first_op"] and "(backward)" in by["mlp.autograd"]["first_op"]
