"""Rounding error of the hand-written backward passes against autograd, the figures behind
specs/tolerances.toml [gradients] and [functions.legendre_p3_backward].

    python benchmarks/measure_gradient_error.py [--examples 2000]

Draws inputs with the very strategies of tests/test_properties_gradients.py and
tests/test_properties_functions.py (Hypothesis, random mode, no database) and prints, per backward
function and dtype, the largest |manual - autograd| / sum|terms| seen (the quantity the tests
bound by rtol), and whether any entry differed where sum|terms| is 0 (which atol would have to
cover). One torch thread, one BLAS thread, CPU.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference.variants import mlp_numpy, mlp_tensor, poly_numpy, poly_tensor  # noqa: E402


def _load_test_module(name: str):
    path = ROOT / "tests" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


T = _load_test_module("test_properties_gradients")
F = _load_test_module("test_properties_functions")


def ratios(manual, auto, bound) -> tuple[float, bool]:
    m = np.asarray(manual.detach().cpu().double() if isinstance(manual, torch.Tensor) else manual, dtype=np.float64)
    a = auto.detach().cpu().double().numpy()
    err = np.abs(m - a)
    b = np.asarray(bound, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b > 0, err / b, 0.0)
    return float(np.max(r, initial=0.0)), bool(np.any((b == 0) & (err > 0)))


def mlp_numpy_case(case, dtype):
    x, y, w1, w2 = case["x"], case["y"], case["w1"], case["w2"]
    h = x.dot(w1)
    h_relu = np.maximum(h, 0)
    y_pred = h_relu.dot(w2)
    manual = mlp_numpy.backward(x, y, w1, w2, h, h_relu, y_pred)
    tx, ty, tw1, tw2 = (torch.from_numpy(v) for v in (x, y, w1, w2))
    tw1.requires_grad_(True)
    tw2.requires_grad_(True)
    th = T._Pinned.apply(tx.mm(tw1), torch.from_numpy(h))
    ty_pred = T._Pinned.apply(th.clamp(min=0).mm(tw2), torch.from_numpy(y_pred))
    auto = torch.autograd.grad((ty_pred - ty).pow(2).sum(), (tw1, tw2))
    return manual, auto, T.mlp_bounds(x, w1, w2, h, y_pred, y)


def mlp_tensor_case(case, dtype):
    x, y = (torch.from_numpy(case[k]) for k in ("x", "y"))
    w1, w2 = (T.leaf(case[k]) for k in ("w1", "w2"))
    h = x.mm(w1)
    h_relu = h.clamp(min=0)
    y_pred = h_relu.mm(w2)
    auto = torch.autograd.grad((y_pred - y).pow(2).sum(), (w1, w2))
    manual = mlp_tensor.backward(x, y, w1.detach(), w2.detach(), h.detach(), h_relu.detach(), y_pred.detach())
    return manual, auto, T.mlp_bounds(case["x"], case["w1"], case["w2"], h.detach(), y_pred.detach(), case["y"])


def poly_numpy_case(case, dtype):
    x, y = case["x"], case["y"]
    a, b, c, d = (case[k] for k in "abcd")
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    manual = poly_numpy.backward(x, y, y_pred)
    coefficients = [T.leaf(case[k]) for k in "abcd"]
    ta, tb, tc, td = coefficients
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    ty_pred = T._Pinned.apply(ta + tb * tx + tc * tx ** 2 + td * tx ** 3, torch.from_numpy(y_pred))
    auto = torch.autograd.grad((ty_pred - ty).pow(2).sum(), coefficients)
    return manual, auto, T.poly_bounds(x, y_pred, y)


def poly_tensor_case(case, dtype):
    x, y = (torch.from_numpy(case[k]) for k in ("x", "y"))
    coefficients = [T.leaf(case[k]) for k in "abcd"]
    a, b, c, d = coefficients
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    auto = torch.autograd.grad((y_pred - y).pow(2).sum(), coefficients)
    manual = poly_tensor.backward(x, y, y_pred.detach())
    return manual, auto, T.poly_bounds(case["x"], y_pred.detach(), case["y"])


def p3_case(case, dtype):
    z, upstream = case
    z_mine = z.clone().requires_grad_()
    (mine,) = torch.autograd.grad(F.LegendrePolynomial3.apply(z_mine), z_mine, upstream)
    z_auto = z.clone().requires_grad_()
    (auto,) = torch.autograd.grad(0.5 * (5 * z_auto ** 3 - 3 * z_auto), z_auto, upstream)
    bound = upstream.double().abs() * 1.5 * (5 * z.double() ** 2 + 1)
    return [mine], [auto], [bound.numpy()]


@st.composite
def p3_inputs(draw, dtype):
    limit = 1e8 if dtype == "float32" else 1e60  # as in test_legendre_p3_backward_equals_autograd_of_its_formula
    z = draw(F.tensors(dtype, "cpu", limit=limit))
    return z, draw(F.tensors(dtype, "cpu", shape=tuple(z.shape), limit=limit))


CASES = {
    "mlp_numpy.backward": (T.mlp_cases, mlp_numpy_case),
    "mlp_tensor.backward": (T.mlp_cases, mlp_tensor_case),
    "poly_numpy.backward": (T.poly_cases, poly_numpy_case),
    "poly_tensor.backward": (T.poly_cases, poly_tensor_case),
    "LegendrePolynomial3": (p3_inputs, p3_case),
}


def measure(name: str, dtype: str, examples: int) -> tuple[float, bool]:
    strategy, compute = CASES[name]
    worst = [0.0, False]

    @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy(dtype))
    def run(case):
        manual, auto, bounds = compute(case, dtype)
        for m, a, b in zip(manual, auto, bounds):
            r, at_zero = ratios(m, a, b)
            worst[0] = max(worst[0], r)
            worst[1] = worst[1] or at_zero

    run()
    return worst[0], worst[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    eps = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}
    with threadpool_limits(limits=1, user_api="blas"):
        for dtype in ("float64", "float32"):
            for name in CASES:
                worst, at_zero = measure(name, dtype, args.examples)
                print(f"{name:22s} {dtype}: max |manual - autograd| / sum|terms| = {worst:.3g}"
                      f" ({worst / eps[dtype]:.3g} eps) over {args.examples} examples;"
                      f" differs where sum|terms| == 0: {at_zero}")


if __name__ == "__main__":
    main()
