"""The plugin's own machinery (reference/testing): the dtypes marker, the runs shared by xdist
workers and the plan key they share by, the refusal of a shared run under an injection, and what
keeps the gate fast (a controller without torch, work stealing)."""
from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from reference.harness import plan
from reference.injections import INJECTIONS, active
from reference.testing import plugin, runs
from reference.testing.runs import SharedRuns, plan_digest

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
    result = pytester.runpytest(*plugin.PYTESTER_ARGS, "--collect-only", "-q")
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
    result = pytester.runpytest(*plugin.PYTESTER_ARGS, "--collect-only", "-q")
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


def _ask(folder: str, log_path: str, what: str, out: multiprocessing.Queue) -> None:
    shared = SharedRuns(Path(folder), _slow_run(log_path, "the run"))
    if what == "run":
        out.put(shared.get(plan("poly.nn", steps=3)))
    else:  # shared_once's computation
        out.put(shared.once("scenarios", lambda: _slow_run(log_path, "the run")(None, None)))


@pytest.mark.parametrize("what", ["run", "result"])
def test_a_run_or_result_two_workers_ask_for_at_once_is_made_once_and_both_get_it(tmp_path, what):
    """Two processes (as two xdist workers) ask for the same plan (or shared_once name) at the same
    moment: one makes it under the lock, the other waits and reads it; neither makes it twice."""
    log = tmp_path / "log"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_ask, args=(str(tmp_path), str(log), what, results)) for _ in range(2)]
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


def test_injections_in_effect_are_named_while_they_last():
    mean, adam = "mse 'sum' -> 'mean'", "adam eps 1e-8 -> 1e-6"
    assert active() == ()
    with INJECTIONS[mean]():
        with INJECTIONS[adam]():
            assert active() == (mean, adam)
        assert active() == (mean,)
    assert active() == ()


def test_cached_run_refuses_a_run_under_an_injection_naming_it(cached_run):
    """A changed program must neither be judged by the program's own shared run nor leave its run
    to the tests after it."""
    refused = r"under the injection mse 'sum' -> 'mean'.*reference\.run inside"
    with INJECTIONS["mse 'sum' -> 'mean'"](), pytest.raises(RuntimeError, match=refused):
        cached_run("poly.nn", steps=3)


def test_loading_the_plugin_imports_no_torch():
    """The xdist controller loads the plugin and runs no test: it must not pay for torch (~7 s of
    the gate's wall time, before any worker starts)."""
    code = "import sys, reference.testing.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("process, runs_tests", [
    (SimpleNamespace(workerinput={"workerid": "gw0"}, getoption=lambda name, default=None: "worksteal"), True),
    (SimpleNamespace(getoption=lambda name, default=None: "worksteal"), False),  # xdist's controller
    (SimpleNamespace(getoption=lambda name, default=None: "no"), True),  # no xdist workers
    (SimpleNamespace(getoption=lambda name, default=None: default), True),  # -p no:xdist
], ids=["worker", "controller", "serial", "without-xdist"])
def test_runs_tests_is_false_only_in_the_xdist_controller(process, runs_tests):
    assert plugin._runs_tests(process) is runs_tests


@pytest.mark.parametrize("worker, imports_torch", [(False, False), (True, True)], ids=["controller", "worker"])
def test_configure_imports_torch_in_a_worker_and_not_in_the_xdist_controller(tmp_path, monkeypatch, worker,
                                                                              imports_torch):
    from reference.testing import session

    imported = []
    monkeypatch.setattr(session, "_import_torch", lambda threads: imported.append(threads))
    monkeypatch.setattr(session.TestSession, "_interrupt_on_sigterm", lambda self: None)  # no signal handler
    monkeypatch.setattr(runs, "new_session_folder", lambda: tmp_path)
    options = {"dist": "worksteal", "--record-trajectories": None}
    config = SimpleNamespace(getoption=lambda name, default=None: options.get(name, default), stash={},
                             addinivalue_line=lambda name, line: None, add_cleanup=lambda cleanup: None)
    if worker:
        config.workerinput = {"workerid": "gw0", runs.WORKER_INPUT_KEY: str(tmp_path)}
    plugin.pytest_configure(config)
    assert bool(imported) is imports_torch
    assert session.TestSession.of(config).runs_dir == tmp_path  # the rest of configure ran


@pytest.mark.parametrize("numprocesses, dist, expected", [
    ("auto", "no", "worksteal"),  # -n auto: the README's gate
    (2, "load", "load"),  # --dist given: the user's choice
    (0, "no", "no"),  # -n 0: no workers
])
def test_n_without_dist_distributes_by_work_stealing(numprocesses, dist, expected):
    config = SimpleNamespace(option=SimpleNamespace(numprocesses=numprocesses, dist=dist))
    plugin.pytest_cmdline_main(config)
    assert config.option.dist == expected
