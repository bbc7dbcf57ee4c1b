"""The plugin's own machinery (reference/testing): the dtypes marker, the runs shared by xdist
workers, and the plan key they share by."""
from __future__ import annotations

import multiprocessing
import textwrap
import time

import pytest

from reference.harness import plan
from reference.testing.runs import SharedRuns, plan_digest

PLUGIN = ("-p", "reference.testing.plugin", "-p", "no:cacheprovider")


def test_plans_that_make_the_same_run_are_equal_and_hash_alike_however_spelled():
    spelled = plan("mlp.nn", dtype="double", lr=1e-4)
    default = plan("mlp.nn", dtype="float64", steps=spelled.variant.steps)
    assert spelled == default and hash(spelled) == hash(default)
    assert plan_digest(spelled, None) == plan_digest(default, None)
    assert plan("mlp.nn", dtype="float64", lr=2e-4) != default
    assert plan_digest(default, (0, 1)) != plan_digest(default, None)  # a traced run is another run
    assert plan("mlp.nn", **default.arguments()) == default


def test_dtypes_marker_narrows_the_dtypes_with_pytorch_style_ids(pytester):
    pytester.makepyfile(textwrap.dedent("""
        import pytest

        @pytest.mark.dtypes("float16", "int64")
        def test_a(device, dtype):
            pass

        def test_b(dtype):
            pass
    """))
    result = pytester.runpytest(*PLUGIN, "--collect-only", "-q")
    ids = sorted(line.split("::")[1] for line in result.outlines if "::" in line)
    assert ids == ["test_a[cpu_float16]", "test_a[cpu_int64]", "test_a[cuda_float16]", "test_a[cuda_int64]",
                   "test_b[float32]", "test_b[float64]"]


def test_dtypes_marker_naming_no_torch_dtype_is_a_usage_error(pytester):
    pytester.makepyfile(textwrap.dedent("""
        import pytest

        @pytest.mark.dtypes("float33")
        def test_a(dtype):
            pass
    """))
    result = pytester.runpytest(*PLUGIN, "--collect-only", "-q")
    assert result.ret != 0
    assert any("'float33' named; name torch dtypes" in line for line in result.outlines + result.errlines)


def _slow_run(log_path: str, result: str):
    """A stand-in for execute(): takes a while, and logs that it ran."""
    def execute(p, trace_steps):
        with open(log_path, "a") as log:
            log.write("ran\n")
        time.sleep(0.5)
        return result
    return execute


def _ask(folder: str, log_path: str, out: multiprocessing.Queue) -> None:
    shared = SharedRuns(__import__("pathlib").Path(folder), _slow_run(log_path, "the run"))
    out.put(shared.get(plan("poly.nn", steps=3)))


def test_a_run_two_workers_ask_for_at_once_is_made_once_and_both_get_it(tmp_path):
    """Two processes (as two xdist workers) ask for the same plan at the same moment: one makes it
    under the lock, the other waits and reads it; neither makes it twice."""
    log = tmp_path / "log"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_ask, args=(str(tmp_path), str(log), results)) for _ in range(2)]
    for w in workers:
        w.start()
    got = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert got == ["the run", "the run"]
    assert log.read_text() == "ran\n"


def test_without_a_shared_folder_each_process_makes_its_runs_once_in_memory(tmp_path):
    log = tmp_path / "log"
    shared = SharedRuns(None, _slow_run(str(log), "the run"))
    p = plan("poly.nn", steps=3)
    assert shared.get(p) == shared.get(plan("poly.nn", steps=3, dtype="float32")) == "the run"
    assert log.read_text() == "ran\n" and shared.made == ["the run"]


def test_a_run_that_raises_is_not_shared_and_is_made_again_by_the_next_asker(tmp_path):
    calls = []

    def failing(p, trace_steps):
        calls.append(1)
        raise RuntimeError("out of memory")

    for _ in range(2):
        with pytest.raises(RuntimeError, match="out of memory"):
            SharedRuns(tmp_path, failing).get(plan("poly.nn", steps=3))
    assert len(calls) == 2 and not list(tmp_path.glob("*.pickle"))
