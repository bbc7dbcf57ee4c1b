"""The public contract of reference.run and the first specification facts that need no goldens."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

import reference
from reference.harness import draw_start, plan, seed_everything
from reference.judge.rules import golden_steps

ALL_IDS = list(reference.VARIANTS)
SHORT = 20  # steps: enough to exercise every line of a loop, cheap enough for every variant


def test_variants_lists_every_documented_id():
    documented = {
        "mlp.numpy", "mlp.tensor", "mlp.autograd", "mlp.variable", "mlp.custom_function", "mlp.nn",
        "mlp.optim", "mlp.module", "mlp.dynamic", "poly.numpy", "poly.tensor", "poly.autograd",
        "poly.custom_function", "poly.nn", "poly.optim", "poly.module", "poly.dynamic",
    }
    assert documented <= set(reference.VARIANTS)


@pytest.mark.parametrize("vid", ALL_IDS)
def test_trajectory_records_one_finite_loss_per_step_and_cpu_params(vid):
    t = reference.run(vid, steps=SHORT, threads=1)
    assert len(t.losses) == SHORT and all(math.isfinite(x) for x in t.losses)
    assert t.params and all(p.device.type == "cpu" for p in t.params.values())
    assert (t.variant, t.seed, t.device, t.steps, t.threads) == (vid, 0, "cpu", SHORT, 1)
    assert t.dtype == reference.VARIANTS[vid].default_dtype
    assert t.torch_version == torch.__version__ and t.wall_time_s >= 0


@pytest.mark.parametrize("vid", ALL_IDS)
def test_same_call_twice_gives_identical_bits(vid):
    a = reference.run(vid, seed=3, steps=SHORT, threads=1)
    b = reference.run(vid, seed=3, steps=SHORT, threads=1)
    assert a.losses == b.losses
    for name in a.params:
        assert torch.equal(a.params[name], b.params[name]), name


def test_different_seeds_give_different_starts():
    assert reference.run("mlp.tensor", seed=0, steps=1).losses != reference.run("mlp.tensor", seed=1, steps=1).losses


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_setting_is_restored_after_the_run(threads):
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    torch.set_num_threads(other)
    try:
        t = reference.run("mlp.nn", steps=2, threads=threads)
        assert t.threads == threads
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)


def test_threads_none_leaves_torch_setting_alone():
    before = torch.get_num_threads()
    assert reference.run("mlp.nn", steps=2).threads == before
    assert torch.get_num_threads() == before


def test_run_draws_at_the_tutorial_dtype_then_casts():
    """Every dtype starts from the same numbers: the float64 start is the float32 start, widened."""
    f32 = draw_start(plan("mlp.tensor", dtype="float32"))
    f64 = draw_start(plan("mlp.tensor", dtype="float64"))
    assert f32.keys() == f64.keys()
    for name in f32:
        assert f32[name].dtype == torch.float32 and f64[name].dtype == torch.float64, name
        assert torch.equal(f64[name], f32[name].double()), name


def test_run_seeds_torch_random_and_numpy_before_drawing():
    seed_everything(5)
    expected = (torch.rand(1).item(), random.random(), np.random.rand())
    reference.run("mlp.dynamic", seed=5, steps=1)
    seed_everything(5)
    assert (torch.rand(1).item(), random.random(), np.random.rand()) == expected


# --- bad arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: reference.run("mlp.nnn"), r"unknown variant 'mlp.nnn'. Did you mean 'mlp.nn'\?.*Valid choices: .*mlp.numpy"),
        (lambda: reference.run("mlp.nn", learning_rate=1e-3), r"unknown override 'learning_rate'.*Valid choices: .*lr"),
        (lambda: reference.run("mlp.nn", steps=0), r"steps must be an integer >= 1"),
        (lambda: reference.run("mlp.nn", seed=-1), r"seed must be a non-negative integer"),
        (lambda: reference.run("mlp.nn", threads=0), r"threads must be an integer >= 1"),
        (lambda: reference.run("mlp.nn", dtype="float16"), r"dtype 'float16' is not supported.*Valid choices: float32, float64"),
        (lambda: reference.run("poly.numpy", dtype="bfloat16"), r"Valid choices: float64, float32"),
        (lambda: reference.run("mlp.numpy", device="cuda"), r"cannot run on 'cuda'. Valid choices: cpu"),
        (lambda: reference.run("mlp.nn", device="tpu"), r"Valid choices: cpu, cuda"),
        (lambda: reference.run("mlp.module", optimizer="rmsprop"), r"optimizer='rmsprop'.*Valid choices: sgd, adam"),
        (lambda: reference.run("mlp.nn", lr="fast"), r"lr must be a number"),
    ],
)
def test_bad_arguments_raise_value_error_naming_valid_choices(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ValueError, match=r"CUDA is not available here.*Valid choices: cpu"):
        reference.run("mlp.nn", device="cuda")


def test_documented_deviations_run_as_overrides():
    assert reference.run("poly.optim", lr=1e-6, steps=2).hyperparameters["lr"] == 1e-6
    official = reference.run("mlp.module", steps=30, threads=1)
    blog_nn = reference.run("mlp.module", optimizer="adam", steps=30, threads=1)
    assert blog_nn.hyperparameters["optimizer"] == "adam"
    assert official.losses[0] == blog_nn.losses[0] and official.losses[1:] != blog_nn.losses[1:]


# --- specification facts that need no goldens ----------------------------------------------------

# Equivalences between variants: specs/equivalences.toml, tests/test_equivalences.py.


@pytest.mark.parametrize("vid", ALL_IDS)
def test_loss_decreases_from_first_to_last_step(vid, cached_run):
    variant = reference.VARIANTS[vid]
    # per-batch losses (mnist) are noisy: compare the first and last epoch's means
    window = int(variant.claims.get("loss_decrease_window", 1))
    # the golden length for mlp/poly (poly.dynamic: 3000 of its 30000 steps), the full run otherwise
    steps = golden_steps(vid, variant.steps) if window == 1 else variant.steps
    losses = cached_run(vid, dtype=variant.default_dtype, steps=steps, threads=1).losses
    assert np.mean(losses[-window:]) < np.mean(losses[:window])
