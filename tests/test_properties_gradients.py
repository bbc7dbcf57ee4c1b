"""Gradient properties: the variants' hand-written backward passes equal autograd's gradients.

The functions under test are the `backward` functions that the variants' own train() loops call
(reference/variants/{mlp,poly}_{numpy,tensor}.py), so the property checks exactly what runs.

Inputs are drawn by Hypothesis: every shape (N, D_in, H, D_out, or the length of the cubic's grid)
in 1..64, and values that mix exact zeros (of both signs), negatives, and magnitudes over many
decades. Large arrays are filled from a NumPy generator whose seed, zero fraction and decade
spread Hypothesis draws; Hypothesis then overwrites a few entries with values of its own choosing
and may zero whole rows of x / columns of w1, which makes hidden pre-activations exactly 0: the
kink, where the convention matters (the manual backward passes gradient at h == 0).
See Note [clamp gradient at 0].

The decade spread is bounded per dtype so that every intermediate of the backward pass (products
of up to four drawn values for the MLP, seven for the cubic, summed over at most 64^4 terms) stays
finite and normal: 1e-4 .. 1e4 in float32, 1e-40 .. 1e40 in float64.

Comparison: |manual - autograd| <= atol + rtol * bound, elementwise, where bound is the same
gradient computed with absolute values (sum |terms|): the scale that rounding errors of a sum of
products are proportional to. A plain elementwise rtol would fail on legitimate cancellation; a
wrong formula (a transposed matmul, a wrong constant, a mask at the wrong place) is off by the order
of the bound itself. (rtol, atol) per dtype come from specs/tolerances.toml [gradients].
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st

from reference.tolerances import tolerance
from reference.facts import clamp_passes_gradient_at_zero
from reference.harness import full_precision_matmul
from reference.variants import mlp_numpy, mlp_tensor, poly_numpy, poly_tensor

pytestmark = [pytest.mark.property, pytest.mark.usefixtures("one_thread")]

NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
DECADES = {"float32": 4, "float64": 40}  # values in +-[10^-DECADES, 10^DECADES] and 0 (see above)
MAX_SIDE = 64


# --- drawing inputs ----------------------------------------------------------------------------


@st.composite
def value_arrays(draw, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """An array of `shape` mixing zeros, both signs and magnitudes over several decades."""
    seed = draw(st.integers(0, 2**32 - 1))
    zero_fraction = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    spread = draw(st.integers(0, DECADES[dtype]))
    rng = np.random.default_rng(seed)
    magnitude = 10.0 ** rng.uniform(-spread, spread, size=shape)  # log-uniform over 2 * spread decades
    values = rng.choice([-1.0, 1.0], size=shape) * magnitude
    values[rng.random(size=shape) < zero_fraction] = 0.0
    values = values.astype(NUMPY_DTYPES[dtype])
    # A few entries of Hypothesis' own choosing (it shrinks these), including 0.0 and -0.0
    limit = 10.0 ** DECADES[dtype]
    width = 32 if dtype == "float32" else 64
    tiny = float(NUMPY_DTYPES[dtype](1 / limit))  # bounds the dtype can represent
    special = st.one_of(
        st.sampled_from([0.0, -0.0, 1.0, -1.0, limit, -limit, tiny, -tiny]),
        st.floats(tiny, limit, width=width),
        st.floats(-limit, -tiny, width=width),
    )
    flat = values.reshape(-1)
    for index, value in draw(st.lists(st.tuples(st.integers(0, flat.size - 1), special), max_size=8)):
        flat[index] = value
    return values


@st.composite
def mlp_cases(draw, dtype: str) -> dict[str, np.ndarray]:
    """x, y, w1, w2 of a two-layer net with N, D_in, H, D_out drawn in 1..64."""
    n, d_in, h, d_out = (draw(st.integers(1, MAX_SIDE)) for _ in range(4))
    note(f"N={n} D_in={d_in} H={h} D_out={d_out}")
    x = draw(value_arrays((n, d_in), dtype))
    w1 = draw(value_arrays((d_in, h), dtype))
    # Whole zero rows of x / columns of w1 put hidden units exactly at the kink (h == 0)
    x[draw(st.lists(st.integers(0, n - 1), max_size=3))] = 0.0
    w1[:, draw(st.lists(st.integers(0, h - 1), max_size=3))] = 0.0
    return dict(x=x, y=draw(value_arrays((n, d_out), dtype)), w1=w1, w2=draw(value_arrays((h, d_out), dtype)))


@st.composite
def poly_cases(draw, dtype: str) -> dict[str, np.ndarray]:
    """A grid x and targets y of length 1..64, and the cubic's coefficients a, b, c, d."""
    n = draw(st.integers(1, MAX_SIDE))
    coefficients = draw(value_arrays((4,), dtype))
    return dict(
        x=draw(value_arrays((n,), dtype)),
        y=draw(value_arrays((n,), dtype)),
        **dict(zip("abcd", coefficients)),
    )


# --- comparing ---------------------------------------------------------------------------------


def assert_within_rounding(what: str, manual, autograd, bound: np.ndarray, tol: tuple[float, float]) -> None:
    """|manual - autograd| <= atol + rtol * bound elementwise; bound = the sum of |terms|."""
    rtol, atol = tol
    manual = np.asarray(torch.as_tensor(manual).detach().cpu().double() if isinstance(manual, torch.Tensor) else manual,
                        dtype=np.float64)
    autograd = np.asarray(autograd.detach().cpu().double(), dtype=np.float64)
    assert manual.shape == autograd.shape, f"{what}: manual gradient has shape {manual.shape}, autograd's {autograd.shape}"
    assert np.all(np.isfinite(autograd)) and np.all(np.isfinite(bound)), f"{what}: inputs left the finite range"
    error = np.abs(manual - autograd)
    allowed = atol + rtol * bound
    bad = ~(error <= allowed)  # nan in manual counts as bad
    if bad.any():
        worst = np.unravel_index(np.argmax(np.where(bad, error - allowed, -np.inf)), bad.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} entries differ from autograd by more than "
            f"atol + rtol * sum|terms| (rtol={rtol:g}, atol={atol:g}); worst at {tuple(map(int, worst))}: "
            f"manual {manual[worst]!r}, autograd {autograd[worst]!r}, sum|terms| {bound[worst]!r}"
        )


def mlp_bounds(x, w1, w2, h, y_pred, y) -> tuple[np.ndarray, np.ndarray]:
    """The gradients of w1 and w2 recomputed with absolute values, in float64."""
    x, w1, w2, h, y_pred, y = (np.asarray(v, dtype=np.float64) for v in (x, w1, w2, h, y_pred, y))
    abs_grad_y = np.abs(2.0 * (y_pred - y))
    bound_w2 = np.abs(np.maximum(h, 0)).T @ abs_grad_y
    bound_w1 = np.abs(x).T @ ((abs_grad_y @ np.abs(w2).T) * (h >= 0))
    return bound_w1, bound_w2


def poly_bounds(x, y_pred, y) -> list[float]:
    x, y_pred, y = (np.asarray(v, dtype=np.float64) for v in (x, y_pred, y))
    abs_grad_y = np.abs(2.0 * (y_pred - y))
    return [np.asarray(np.sum(abs_grad_y * np.abs(x) ** k)) for k in range(4)]


class _Pinned(torch.autograd.Function):
    """Differentiate `computed` but take the value NumPy computed: autograd then works at exactly
    the forward values the NumPy backward sees (NumPy's and torch's matmuls round differently, and
    at h ~ 0 a rounding difference could flip the ReLU mask)."""

    @staticmethod
    def forward(ctx, computed, value):
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None


def tutorial_relu(h: torch.Tensor) -> torch.Tensor:
    """clamp(min=0), with the gradient at exactly 0 that the hand-written backward uses (passed).

    Up to torch 2.13 that is clamp's own autograd; torch 2.14 blocks clamp's gradient at 0, so
    there the same subgradient is spelled with where(). See Note [clamp gradient at 0].
    """
    if clamp_passes_gradient_at_zero():
        return h.clamp(min=0)
    return torch.where(h >= 0, h, torch.zeros_like(h))


def leaf(array: np.ndarray, device="cpu") -> torch.Tensor:
    return torch.from_numpy(np.array(array)).to(device).requires_grad_(True)


# --- two-layer net -----------------------------------------------------------------------------


@given(data=st.data())
def test_mlp_numpy_manual_backward_equals_autograd(dtype, data):
    case = data.draw(mlp_cases(dtype))
    x, y, w1, w2 = case["x"], case["y"], case["w1"], case["w2"]
    # mlp.numpy's forward pass, then its own backward function
    h = x.dot(w1)
    h_relu = np.maximum(h, 0)
    y_pred = h_relu.dot(w2)
    grad_w1, grad_w2 = mlp_numpy.backward(x, y, w1, w2, h, h_relu, y_pred)

    # autograd through the same graph (the tutorial's ReLU, see tutorial_relu), at NumPy's values
    tx, ty, tw1, tw2 = (torch.from_numpy(v) for v in (x, y, w1, w2))
    tw1.requires_grad_(True)
    tw2.requires_grad_(True)
    th = _Pinned.apply(tx.mm(tw1), torch.from_numpy(h))
    ty_pred = _Pinned.apply(tutorial_relu(th).mm(tw2), torch.from_numpy(y_pred))
    loss = (ty_pred - ty).pow(2).sum()
    auto_w1, auto_w2 = torch.autograd.grad(loss, (tw1, tw2))

    bound_w1, bound_w2 = mlp_bounds(x, w1, w2, h, y_pred, y)
    assert grad_w1.dtype == grad_w2.dtype == NUMPY_DTYPES[dtype]
    assert_within_rounding("grad_w1", grad_w1, auto_w1, bound_w1, tolerance("gradients", dtype))
    assert_within_rounding("grad_w2", grad_w2, auto_w2, bound_w2, tolerance("gradients", dtype))


@given(data=st.data())
def test_mlp_tensor_manual_backward_equals_autograd(device, dtype, data):
    case = data.draw(mlp_cases(dtype))
    dev = torch.device(device)
    with full_precision_matmul(dev):
        x, y = (torch.from_numpy(case[k]).to(dev) for k in ("x", "y"))
        w1, w2 = (leaf(case[k], dev) for k in ("w1", "w2"))
        # mlp.tensor's forward pass, recorded by autograd this time
        h = x.mm(w1)
        h_relu = tutorial_relu(h)
        y_pred = h_relu.mm(w2)
        loss = (y_pred - y).pow(2).sum()
        auto_w1, auto_w2 = torch.autograd.grad(loss, (w1, w2))
        # mlp.tensor's own backward function on the same forward values
        grad_w1, grad_w2 = mlp_tensor.backward(
            x, y, w1.detach(), w2.detach(), h.detach(), h_relu.detach(), y_pred.detach()
        )

    assert grad_w1.dtype == grad_w2.dtype == TORCH_DTYPES[dtype]
    assert grad_w1.device == grad_w2.device == w1.device
    bound_w1, bound_w2 = mlp_bounds(case["x"], case["w1"], case["w2"], h.detach().cpu(), y_pred.detach().cpu(), case["y"])
    assert_within_rounding("grad_w1", grad_w1, auto_w1, bound_w1, tolerance("gradients", dtype))
    assert_within_rounding("grad_w2", grad_w2, auto_w2, bound_w2, tolerance("gradients", dtype))


# --- cubic -------------------------------------------------------------------------------------


@given(data=st.data())
def test_poly_numpy_manual_gradients_equal_autograd(dtype, data):
    case = data.draw(poly_cases(dtype))
    x, y = case["x"], case["y"]
    a, b, c, d = (case[k] for k in "abcd")  # NumPy scalars of the dtype, as the harness passes them
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    assert y_pred.dtype == NUMPY_DTYPES[dtype]
    manual = poly_numpy.backward(x, y, y_pred)

    coefficients = [leaf(case[k]) for k in "abcd"]
    ta, tb, tc, td = coefficients
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    ty_pred = _Pinned.apply(ta + tb * tx + tc * tx ** 2 + td * tx ** 3, torch.from_numpy(y_pred))
    auto = torch.autograd.grad((ty_pred - ty).pow(2).sum(), coefficients)

    for name, m, g, bound in zip("abcd", manual, auto, poly_bounds(x, y_pred, y)):
        assert np.asarray(m).dtype == NUMPY_DTYPES[dtype], f"grad_{name} has dtype {np.asarray(m).dtype}"
        assert_within_rounding(f"grad_{name}", m, g, bound, tolerance("gradients", dtype))


@given(data=st.data())
def test_poly_tensor_manual_gradients_equal_autograd(device, dtype, data):
    case = data.draw(poly_cases(dtype))
    dev = torch.device(device)
    x, y = (torch.from_numpy(case[k]).to(dev) for k in ("x", "y"))
    coefficients = [leaf(case[k], dev) for k in "abcd"]
    a, b, c, d = coefficients
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    auto = torch.autograd.grad((y_pred - y).pow(2).sum(), coefficients)
    manual = poly_tensor.backward(x, y, y_pred.detach())

    for name, m, g, bound in zip("abcd", manual, auto, poly_bounds(case["x"], y_pred.detach().cpu(), case["y"])):
        assert m.dtype == TORCH_DTYPES[dtype] and m.device == x.device, f"grad_{name}: {m.dtype} on {m.device}"
        assert_within_rounding(f"grad_{name}", m, g, bound, tolerance("gradients", dtype))


# --- the kink ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backward", [mlp_numpy.backward, mlp_tensor.backward], ids=["numpy", "tensor"])
def test_manual_backward_passes_gradient_at_exactly_zero_of_either_sign(backward):
    """At h == 0 (of either sign) the hand-written ReLU backward lets the gradient through
    (torch.relu would block it; clamp(min=0) passes it up to torch 2.13 only).
    See Note [clamp gradient at 0]."""
    h = np.array([[-1.0, -0.0, 0.0, 2.0]])
    x = np.ones((1, 1))
    w2 = np.ones((4, 1))
    y = np.zeros((1, 1))
    h_relu = np.maximum(h, 0)
    y_pred = h_relu @ w2 + 1.0  # any nonzero error, so that the gradient reaching h is nonzero
    args = [x, y, np.ones((1, 4)), w2, h, h_relu, y_pred]
    if backward is mlp_tensor.backward:
        args = [torch.from_numpy(a) for a in args]
    grad_w1, _ = backward(*args)
    grad_h = np.asarray(grad_w1)[0]  # x == 1, so grad_w1 is the gradient reaching h
    upstream = 2.0 * (y_pred - y).item()
    assert grad_h.tolist() == [0.0, upstream, upstream, upstream]
