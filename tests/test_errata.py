"""The documents' errata, each shown by its effect.

Each test would fail if its erratum were "fixed" in the documented variant: the documented runs
keep what the documents print, and the tests measure what that does.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import reference
from reference.catalogue import load_toml
from reference.tolerances import tolerance
from reference.mnist import evaluate, load_datasets, rebuild_model
from reference.poly_optimum import least_squares_optimum

DOCUMENTED, FIXED = "mnist.quickstart", "mnist.quickstart_fixed"
MNIST_CLAIMS = reference.VARIANTS[DOCUMENTED].claims
POLY = load_toml("tolerances.toml")["errata"]["poly.optim"]


def _test_logits(trajectory) -> torch.Tensor:
    _, test_data = load_datasets(trajectory.hyperparameters["data_root"])
    with torch.no_grad():
        return rebuild_model(trajectory)(test_data.tensors[0])


# --- blog-mnist-2021: the final ReLU on the logits ------------------------------------------------

@pytest.mark.mnist
def test_blog_mnist_2021_final_relu_leaves_no_logit_negative(cached_run):
    seed = MNIST_CLAIMS["gate_seeds"][0]
    documented = _test_logits(cached_run(DOCUMENTED, seed=seed, threads=1))
    fixed = _test_logits(cached_run(FIXED, seed=seed, threads=1))
    assert float(documented.min()) == 0.0  # clamped at 0, and some logits sit exactly there
    assert float(fixed.min()) < 0.0  # the same training without the ReLU has negative logits


@pytest.mark.mnist
def test_blog_mnist_2021_final_relu_ends_less_accurate_than_the_fixed_model(cached_run):
    """Same seed: the same initial weights (the ReLU has none) and the same data order."""
    for seed in MNIST_CLAIMS["gate_seeds"]:
        documented = evaluate(cached_run(DOCUMENTED, seed=seed, threads=1)).accuracy
        fixed = evaluate(cached_run(FIXED, seed=seed, threads=1)).accuracy
        assert fixed - documented >= MNIST_CLAIMS["fixed_minus_documented_accuracy_min"], seed


@pytest.mark.mnist
@pytest.mark.slow
def test_blog_mnist_2021_final_relu_ends_less_accurate_on_every_measured_seed(cached_run):
    gaps = [
        evaluate(cached_run(FIXED, seed=s, threads=1)).accuracy - evaluate(cached_run(DOCUMENTED, seed=s, threads=1)).accuracy
        for s in MNIST_CLAIMS["measured_seeds"]
    ]
    assert min(gaps) >= MNIST_CLAIMS["fixed_minus_documented_accuracy_worst_min"]
    assert float(np.median(gaps)) >= MNIST_CLAIMS["fixed_minus_documented_accuracy_median_min"]


# --- blog-mnist-2021: the average test loss divided by the number of samples ----------------------

@pytest.mark.mnist
def test_blog_mnist_2021_avg_test_loss_is_about_batch_size_times_smaller_than_the_per_batch_average(cached_run):
    result = evaluate(cached_run(DOCUMENTED, seed=MNIST_CLAIMS["gate_seeds"][0], threads=1))
    batch_size = reference.VARIANTS[DOCUMENTED].hyperparameters["batch_size"]
    ratio = result.avg_loss_per_batch / result.avg_loss
    # exactly samples / batches ...
    np.testing.assert_allclose(ratio, result.size / result.batches, **tolerance("mnist", "test_loop").kwargs)
    # ... which lies between batch_size * size / (size + batch_size) and batch_size (59.8 here: 299 / 5)
    assert batch_size * result.size / (result.size + batch_size) <= ratio <= batch_size


# --- blog-poly: RMSprop at lr 1e-6 ----------------------------------------------------------------

def _over_optimum(seeds, run):
    best = least_squares_optimum(reference.VARIANTS["poly.optim"].hyperparameters["points"])
    documented = [run("poly.optim", seed=s, threads=1).losses[-1] / best for s in seeds]
    blog_poly = [run("poly.optim", seed=s, threads=1, lr=1e-6).losses[-1] / best for s in seeds]
    return documented, blog_poly


def test_blog_poly_rmsprop_lr_1e_6_stays_far_from_the_optimum_that_lr_1e_3_reaches(cached_run):
    assert reference.VARIANTS["poly.optim"].hyperparameters["lr"] == 1e-3
    documented, blog_poly = _over_optimum(POLY["gate_seeds"], cached_run)
    assert max(documented) <= POLY["documented_max_over_optimum"]
    assert min(blog_poly) >= POLY["blog_poly_min_over_optimum"]


@pytest.mark.slow
def test_blog_poly_rmsprop_lr_1e_6_stays_far_from_the_optimum_on_every_measured_seed(cached_run):
    documented, blog_poly = _over_optimum(POLY["measured_seeds"], cached_run)
    assert max(documented) <= POLY["documented_max_over_optimum"]
    assert min(blog_poly) >= POLY["blog_poly_min_over_optimum"]


# blog-variable (the legacy Variable / .data API gives the modern autograd trajectory bit for bit):
# a row of specs/equivalences.toml, tests/test_equivalences.py.
