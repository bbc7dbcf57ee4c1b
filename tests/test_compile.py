"""torch.compile as an execution mode, judged against the eager goldens by the golden policy.

aot_eager (dynamo + AOTAutograd, eager kernels) must reproduce eager bit for bit; inductor
(generated C++ kernels: other summation orders) must stay within the policy, float32 judged by its
distance from the float64 golden as the golden tests judge it. Where a compiled run is known not to
do that, specs/compile.toml says why, per torch version: those tests xfail with the reason, and
fail when the deviation goes away (the row must then be removed).

Opt-in (`pytest -m compile`): a cold inductor compile costs 20-35 s per variant and dtype on 2 cores.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from reference.harness.compiling import BACKENDS, compilable_variants, expected_deviation, unavailable_reason
from reference.harness.threads import CANONICAL_THREADS
from reference.judge.goldens import GoldenKey
from reference.judge.rules import golden_seeds

CASES = [(v, s) for v in compilable_variants() for s in golden_seeds(v)]
CASE_IDS = [f"{v}-seed{s}" for v, s in CASES]


def _backend(request: pytest.FixtureRequest, name: str) -> str:
    reason = unavailable_reason(name)
    if reason is not None:
        if request.config.getoption("--require-compile"):
            pytest.fail(f"--require-compile: {reason}", pytrace=False)
        pytest.skip(reason)
    return name


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return _backend(request, request.param)


def judge_compiled(golden, cached_run, variant_id: str, seed: int, device: str, dtype: str, backend: str, *,
                   bitwise: bool) -> None:
    """Run `variant_id` compiled with `backend` and judge it against the eager golden (the golden
    fixture's judgement, report and summary line); fail with the golden report, or xfail where
    specs/compile.toml declares the deviation for this torch."""
    key = GoldenKey(variant_id, dtype, seed)
    judged, problem = golden.judge(key, device=device, compile=backend)
    run = judged.now
    assert run.compile == backend and set(run.compile_stats) == {"graphs", "graph_breaks", "recompiles"}
    assert run.compile_stats["graphs"] >= 1, f"dynamo compiled nothing in this run: {run.compile_stats}"
    where = f"{device} compile={backend}"
    if problem is None and bitwise:
        # against eager on this torch, in this process (a torch release may move eager itself)
        eager = cached_run(variant_id, seed=seed, dtype=dtype, device=device, steps=key.steps,
                           threads=CANONICAL_THREADS)
        differs = _bitwise_difference(run, eager)
        if differs is not None:
            problem = f"{key} on {where} is not bitwise eager (aot_eager runs eager kernels): {differs}"
    declared = expected_deviation(variant_id, dtype, backend, bitwise=bitwise)
    if declared is not None:
        if problem is None:
            pytest.fail(f"{key} on {where} no longer deviates as specs/compile.toml declares for torch "
                        f"{torch.__version__} ({declared}): remove that row", pytrace=False)
        pytest.xfail(f"declared in specs/compile.toml: {declared}")
    if problem is not None:
        pytest.fail(problem, pytrace=False)


def _bitwise_difference(run, eager) -> str | None:
    """Where a compiled run first differs from the eager run in any bit (losses, then final
    parameters), or None."""
    for t, (a, b) in enumerate(zip(run.losses, eager.losses)):
        if a != b and not (a != a and b != b):
            return f"loss of step {t} is {a!r}, eager {b!r}"
    if sorted(run.params) != sorted(eager.params):
        return f"parameters {sorted(run.params)}, eager {sorted(eager.params)}"
    for name in sorted(eager.params):
        if not torch.equal(run.params[name], eager.params[name]):
            return f"final parameter {name} differs (losses equal)"
    return None


def test_bitwise_difference_names_the_first_differing_loss_or_parameter_and_takes_nan_as_equal():
    """The aot_eager verdict's helper, on made-up runs (cheap: no compiling)."""
    def run(losses, w):
        return SimpleNamespace(losses=losses, params={"w": torch.tensor(w, dtype=torch.float64)})

    nan = float("nan")
    eager = run([3.0, nan, 1.0], [0.5, -0.25])
    assert _bitwise_difference(run([3.0, nan, 1.0], [0.5, -0.25]), eager) is None
    assert _bitwise_difference(run([3.0, 2.0, 1.0], [0.5, -0.25]), eager) == "loss of step 1 is 2.0, eager nan"
    assert _bitwise_difference(run([3.0, nan, 1.0 + 2**-40], [0.5, -0.25]), eager).startswith("loss of step 2 ")
    assert _bitwise_difference(run([3.0, nan, 1.0], [0.5, -0.25 + 2**-40]), eager) == \
        "final parameter w differs (losses equal)"


# --- the argument (cheap: in the default gate) ---------------------------------------------------------

def test_compile_argument_is_checked_before_anything_runs():
    import reference
    from reference.harness import plan

    others = [v for v in reference.VARIANTS if v not in compilable_variants()]
    assert others, "every variant compiles? then this test checks nothing"
    for vid in others:
        with pytest.raises(ValueError, match=r"builds no nn.Module.*Valid variants for compile=: mlp.nn, "):
            plan(vid, compile="inductor")
    for bad in ("Inductor", "eager", "cudagraphs", True, 1):
        with pytest.raises(ValueError, match=r"Valid choices: None, aot_eager, inductor"):
            plan("mlp.nn", compile=bad)
    assert plan("mlp.nn").compile is None and plan("mlp.nn", compile="aot_eager").compile == "aot_eager"


def test_cli_compile_flag_is_checked_before_anything_runs(capsys):
    from reference.cli import main

    assert main(["run", "mlp.nn", "mlp.numpy", "--compile", "inductor"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "mlp.numpy builds no nn.Module" in err
    assert "Valid variants for compile=: mlp.nn" in err
    assert main(["run", "mlp.nn", "--compile", "jit"]) == 2
    assert "Valid choices: None, aot_eager, inductor" in capsys.readouterr().err


@pytest.mark.compile  # no compiling, but MNIST's make() loads the digits: seconds the default gate need not spend
def test_compilable_variants_are_exactly_those_whose_make_builds_a_module():
    import reference
    from reference.harness.running import _call

    builds_module = []
    for vid, variant in reference.VARIANTS.items():
        drawn = _call(variant.module().make, dict(variant.hyperparameters))  # MNIST: the embedded digits
        if any(isinstance(v, torch.nn.Module) for v in drawn.values()):
            builds_module.append(vid)
    assert sorted(builds_module) == sorted(compilable_variants())


def test_compare_gives_compiled_runs_their_own_column_judged_against_eager(tmp_path, capsys):
    """`python -m reference compare results/torch213 results/torch213-compile`: one row per run, a
    column per compile mode, each judged against the eager baseline; old files without the compile
    fields still load."""
    import dataclasses
    import json

    from reference.cli import main
    from reference.harness.trajectory import save_trajectories
    from test_compare import BASE, matrix, perturbed, trajectory

    eager = trajectory()
    old = tmp_path / "torch213" / "main.json"
    save_trajectories(old, [eager])
    data = json.loads(old.read_text())
    for entry in data["trajectories"]:  # as written before compile= existed
        del entry["compile"], entry["compile_stats"]
    old.write_text(json.dumps(data))
    compiled = [dataclasses.replace(eager, compile="aot_eager", compile_stats={"graphs": 1}),
                dataclasses.replace(eager, compile="inductor", losses=perturbed(BASE, 1e-8, from_step=3))]
    save_trajectories(tmp_path / "torch213-compile" / "main.json", compiled)
    status = main(["compare", str(tmp_path / "torch213"), str(tmp_path / "torch213-compile"), "--no-plots"])
    out = capsys.readouterr().out
    assert status == 0, out
    rows = matrix(out)
    assert rows["run"] == ["torch213:cpu", "torch213-compile:cpu+aot_eager", "torch213-compile:cpu+inductor"]
    assert rows["mlp.nn float64 seed 0"][:2] == ["baseline", "exact"]
    assert rows["mlp.nn float64 seed 0"][2].startswith("close 1.0e-08")


def test_a_compiled_run_refuses_an_op_trace_instead_of_running_eagerly():
    """dynamo does not compile a frame first called under the trace's dispatch mode (nor later):
    a traced "compiled" run would be an eager one. --record-trajectories leaves compiled runs untraced."""
    import reference

    with pytest.raises(ValueError, match=r"trace_steps cannot be recorded in a compile='aot_eager' run.*"
                                         r"Valid choices: trace_steps=None, or compile=None"):
        reference.run("mlp.nn", steps=2, compile="aot_eager", trace_steps=[0])


def test_inductor_without_a_cpp_compiler_is_refused_naming_the_backends_that_can_run(monkeypatch):
    from reference.harness import compiling, plan

    monkeypatch.setattr(compiling, "unavailable_reason",
                        lambda b: "inductor needs a C++ compiler (simulated)" if b == "inductor" else None)
    with pytest.raises(ValueError, match=r"cannot run here: inductor needs a C\+\+ compiler .*Valid choices: None, aot_eager$"):
        plan("mlp.nn", compile="inductor")


@pytest.mark.compile
def test_inductor_tests_skip_without_a_cpp_compiler_and_fail_under_require_compile():
    """CXX naming no compiler: inductor's tests skip saying why; --require-compile stops the session."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "CXX": "/nonexistent/g++"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("TES_REQUIRE_COMPILE", None)
    args = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:randomly", "-p", "no:cacheprovider", "-q", "-rs",
            "-m", "compile", "tests/test_compile.py::test_inductor_run_is_within_the_golden_policy[poly.nn-seed0-cpu_float64]"]
    root = Path(__file__).resolve().parent.parent
    skipped = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout + skipped.stderr
    assert "inductor needs a C++ compiler" in skipped.stdout
    required = subprocess.run([*args, "--require-compile"], cwd=root, env=env, capture_output=True, text=True,
                              timeout=600)
    assert required.returncode == 3, required.stdout + required.stderr
    assert "--require-compile: inductor needs a C++ compiler" in required.stdout + required.stderr


# --- the private torch API this harness reads (fails loudly when a release moves it) --------------------

# In the default gate, so that every torch version the gate runs on checks this private API: its three
# aot_eager compiles cost 1.2 s of CPU (2026-11-30, torch 2.13.0, load 11 on 2 cores; torch._dynamo is
# imported by the plugin anyway) and write no cache files.
def test_dynamo_counts_see_graphs_breaks_and_recompiles():
    from reference.harness.compiling import compiled_run
    from reference.private import dynamo_callback_handler

    if dynamo_callback_handler() is None:
        pytest.skip(f"torch {torch.__version__} has no torch._dynamo.callback_handler: recompiles are not counted "
                    "(tests/test_private.py checks they are left out, not reported as 0)")

    def f(x, n):
        x = x * 2
        torch._dynamo.graph_break()
        for _ in range(n):
            x = x + 1
        return x

    with compiled_run("aot_eager") as counts:
        g = torch.compile(f, backend="aot_eager")
        for n in (1, 1, 2):  # n is specialised: the second value recompiles
            g(torch.ones(3), n)
    assert counts["graphs"] >= 3 and counts["graph_breaks"] >= 1 and counts["recompiles"] >= 1, counts


# --- compiled runs against the eager goldens ----------------------------------------------------------

@pytest.mark.compile
@pytest.mark.golden
@pytest.mark.parametrize("variant_id, seed", CASES, ids=CASE_IDS)
def test_aot_eager_run_is_bitwise_the_eager_golden(variant_id, seed, device, dtype, request, golden, cached_run):
    _backend(request, "aot_eager")
    judge_compiled(golden, cached_run, variant_id, seed, device, dtype, "aot_eager", bitwise=True)


@pytest.mark.compile
@pytest.mark.golden
@pytest.mark.parametrize("variant_id, seed", CASES, ids=CASE_IDS)
def test_inductor_run_is_within_the_golden_policy(variant_id, seed, device, dtype, request, golden, cached_run):
    _backend(request, "inductor")
    judge_compiled(golden, cached_run, variant_id, seed, device, dtype, "inductor", bitwise=False)


@pytest.mark.compile
@pytest.mark.parametrize("variant_id", ["mlp.dynamic", "poly.dynamic"])
def test_random_depth_recompiles_and_the_trajectory_says_so(variant_id, cached_run):
    """DynamicNet's depth is Python control flow: dynamo specialises on it, one graph per depth seen."""
    steps = GoldenKey(variant_id, "float32", 0).steps
    run = cached_run(variant_id, dtype="float32", steps=steps, threads=CANONICAL_THREADS, compile="aot_eager")
    assert run.compile_stats["recompiles"] >= 2 and run.compile_stats["graphs"] >= 3, run.compile_stats


# --- the compile tests catch a change in the compiler ---------------------------------------------------

@pytest.mark.compile
def test_inductor_comparison_fails_when_matmuls_run_in_bfloat16(request, artifacts_dir, cached_run,
                                                                             monkeypatch):
    """A reduced-precision matmul inside inductor (a post-grad pass that computes mm / addmm in
    bfloat16) fails the inductor comparison with the golden report."""
    _backend(request, "inductor")
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "post_grad_custom_post_pass", _bfloat16_matmuls)
    variant_id, dtype = "mlp.nn", "float32"
    from reference.testing.goldens import Golden

    uncached = _uncached(cached_run)
    changed = Golden(request, uncached, artifacts_dir / "bfloat16_matmuls")
    with pytest.raises(pytest.fail.Exception) as failure:
        judge_compiled(changed, uncached, variant_id, 0, "cpu", dtype, "inductor", bitwise=False)
    text = str(failure.value)
    assert f"golden mismatch for {variant_id}-{dtype}-seed0 on cpu compile=inductor" in text
    assert "diverged, max relative error" in text and "report:" in text


def _uncached(cached_run):
    """reference.run with cached_run's signature: the changed compiler must not share the session's runs."""
    import reference

    return lambda variant_id, **kwargs: reference.run(variant_id, **kwargs)


def _bfloat16_matmuls(graph: torch.fx.Graph) -> None:
    """mm / addmm computed in bfloat16 (inputs rounded, product rounded), then cast back."""
    aten, prims = torch.ops.aten, torch.ops.prims
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (aten.mm.default, aten.addmm.default):
            continue
        with graph.inserting_before(node):
            low = [graph.call_function(prims.convert_element_type.default, (arg, torch.bfloat16))
                   if isinstance(arg, torch.fx.Node) else arg for arg in node.args]
            product = graph.call_function(node.target, tuple(low), node.kwargs)
            back = graph.call_function(prims.convert_element_type.default, (product, torch.float32))
        node.replace_all_uses_with(back)
        graph.erase_node(node)
