"""Equivalences that hold by construction, checked within the tolerances of specs/tolerances.toml
[equivalence], on seeds drawn by Hypothesis from the measured seed_range there (a few per run; more
under the thorough profile).

- mlp.nn and mlp.module build the same network from the same draws (Linear(D_in, H), a ReLU,
  Linear(H, D_out)) and take the same SGD step (lr 1e-4); they differ only in how: nn.ReLU against
  clamp(min=0) (different gradients at exactly 0 up to torch 2.13, and float32 training reaches
  exact zeros: See Note [exact zeros in float32]) and
  `p -= lr * p.grad` against optimizer.step() (different rounding). They end in the same place.
- The NumPy programs and their torch translations (mlp.numpy / mlp.tensor, poly.numpy /
  poly.tensor) compute the same thing: given the same start in float64, every step's loss and the
  final parameters agree (only BLAS rounding differs).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import reference
from reference.catalogue import load_toml
from reference.harness import seed_everything, thread_count
from reference.variants import mlp_numpy, mlp_tensor, poly_numpy, poly_tensor

pytestmark = pytest.mark.property

# Seeds from the range the tolerances were measured over (specs/tolerances.toml [equivalence])
SEEDS = st.integers(*load_toml("tolerances.toml")["equivalence"]["seed_range"])
# Each example costs two full-length runs (~1-3 s): a few seeds in the ci/dev profiles (25
# examples), more under thorough (500 -> 25).
EXAMPLES = max(2, settings().max_examples // 20)
# No shrinking: each shrink step is another full-length run, and a failing seed is already
# reported as it is.
NO_SHRINK = [phase for phase in settings().phases if phase is not Phase.shrink]


def tolerance(*path: str) -> tuple[float, float]:
    entry = load_toml("tolerances.toml")["equivalence"]
    for key in path:
        entry = entry[key]
    return float(entry["rtol"]), float(entry["atol"])


@pytest.fixture(autouse=True)
def one_thread():
    from threadpoolctl import threadpool_limits

    with thread_count(1), threadpool_limits(limits=1, user_api="blas"):
        yield


def assert_close(what: str, actual, expected, tol: tuple[float, float]) -> None:
    """|actual - expected| <= atol + rtol * |expected|, elementwise (torch.testing's rule)."""
    rtol, atol = tol
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shapes {a.shape} and {e.shape}"
    error = np.abs(a - e)
    allowed = atol + rtol * np.abs(e)
    bad = ~(error <= allowed)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, error - allowed, -np.inf)), bad.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} values differ by more than atol + rtol * |expected| "
            f"(rtol={rtol:g}, atol={atol:g}); worst at {tuple(map(int, i))}: {a[i]!r} vs {e[i]!r}"
        )


# --- mlp.nn and mlp.module -------------------------------------------------------------------


@settings(max_examples=EXAMPLES, phases=NO_SHRINK)
@given(seed=SEEDS)
def test_mlp_nn_and_mlp_module_end_in_the_same_place(device, dtype, seed):
    nn = reference.run("mlp.nn", seed=seed, device=device, dtype=dtype, threads=1)
    module = reference.run("mlp.module", seed=seed, device=device, dtype=dtype, threads=1)
    assert nn.losses[0] == module.losses[0], "not the same start"
    # Sequential numbers its layers 0 and 2; TwoLayerNet names them linear1 and linear2
    pairs = zip(nn.params.items(), module.params.items(), strict=True)
    for (nn_name, nn_param), (module_name, module_param) in pairs:
        assert_close(f"{nn_name} vs {module_name}", nn_param, module_param,
                     tolerance("mlp_nn_vs_module", "params", dtype))
    assert_close("final loss", nn.losses[-1], module.losses[-1], tolerance("mlp_nn_vs_module", "final_loss", dtype))


# --- NumPy and torch from the same start ---------------------------------------------------------


def numpy_and_torch_from_the_same_start(family: str, seed: int) -> tuple[dict, dict]:
    """Draw the NumPy program's start (float64) once, train the NumPy and the torch program on
    copies of it, and return both runs as {"losses": [...], "params": {name: ndarray}}."""
    numpy_module, torch_module = (mlp_numpy, mlp_tensor) if family == "mlp" else (poly_numpy, poly_tensor)
    variant = reference.VARIANTS[f"{family}.numpy"]
    hp = dict(variant.hyperparameters)
    steps = hp.pop("steps")
    sizes = {k: hp.pop(k) for k in ("N", "D_in", "H", "D_out", "points") if k in hp}
    seed_everything(seed)
    start = numpy_module.make(**sizes)

    runs = []
    for module, convert in ((numpy_module, _copy_numpy), (torch_module, _to_torch)):
        losses: list[float] = []
        params = module.train(**{k: convert(v) for k, v in start.items()}, **hp, steps=steps,
                              record=lambda t, loss: losses.append(float(loss)))
        runs.append({"losses": losses, "params": {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}})
    return runs[0], runs[1]


def _copy_numpy(value):
    return np.array(value, dtype=np.float64) if isinstance(value, np.ndarray) else np.float64(value)


def _to_torch(value):
    return torch.tensor(value, dtype=torch.float64)


@pytest.mark.parametrize("family", ["mlp", "poly"])
@settings(max_examples=EXAMPLES, phases=NO_SHRINK)
@given(seed=SEEDS)
def test_numpy_and_torch_variants_agree_in_float64_from_the_same_start(family, seed):
    numpy_run, torch_run = numpy_and_torch_from_the_same_start(family, seed)
    assert all(math.isfinite(x) for x in numpy_run["losses"])
    assert_close("loss at every step (torch vs NumPy)", torch_run["losses"], numpy_run["losses"],
                 tolerance("numpy_vs_torch", family, "losses"))
    for name in numpy_run["params"]:
        assert_close(f"final {name} (torch vs NumPy)", torch_run["params"][name], numpy_run["params"][name],
                     tolerance("numpy_vs_torch", family, "params"))
