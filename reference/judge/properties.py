"""Properties checked on fixed inputs, against the installed torch: the pieces the golden trajectories
rest on, asserted directly (MyReLU equals clamp away from 0, the gradient at exactly 0 that
specs/torch_behaviour.toml states, manual gradients equal autograd, Legendre's P3). `check` runs
them beside the golden comparisons; tests/test_properties_*.py state the same claims over
Hypothesis-drawn inputs.

Each property raises AssertionError naming what differs; check_property() turns that into a result.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..facts import FactChanged, clamp_passes_gradient_at_zero, fact
from .blocks import FIXED, variants_using
from ..harness.running import full_precision_matmul, thread_count
from ..tolerances import tolerance
from ..variants import mlp_tensor, poly_tensor
from ..variants.mlp_custom_function import MyReLU
from ..variants.poly_custom_function import LegendrePolynomial3

def _bits(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu()
    return t.view({torch.float32: torch.int32, torch.float64: torch.int64}[t.dtype])


def _fixed_values(dtype: torch.dtype, device: str) -> torch.Tensor:
    """Exact zeros of both signs, infinities, NaN, a subnormal, and 64 seeded normals."""
    info = torch.finfo(dtype)
    specials = [float("-inf"), -1e30, -1.5, -info.tiny / 4, -0.0, 0.0, info.tiny / 4, 1e-3, 2.5, 1e30,
                float("inf"), float("nan")]
    g = torch.Generator().manual_seed(0)
    return torch.cat([torch.tensor(specials, dtype=dtype), torch.randn(64, generator=g, dtype=dtype)]).to(device)


def _grad(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    leaf = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(fn(leaf), leaf, upstream)
    return g


def prop_myrelu_forward(device: str, dtype: torch.dtype) -> None:

    x = _fixed_values(dtype, device)
    if not torch.equal(_bits(MyReLU.apply(x)), _bits(x.clamp(min=0))):
        raise AssertionError("MyReLU(x) and x.clamp(min=0) differ in some bits")


def prop_myrelu_backward(device: str, dtype: torch.dtype) -> None:

    x = _fixed_values(dtype, device)[:-1]  # no NaN input: its gradient is a convention, not the tutorial's
    x = x[torch.isfinite(x)]
    upstream = torch.linspace(-3, 3, x.numel(), dtype=dtype, device=device)
    mine, clamps = _grad(MyReLU.apply, x, upstream), _grad(lambda t: t.clamp(min=0), x, upstream)
    if not clamp_passes_gradient_at_zero():  # this torch blocks clamp at 0: See Note [clamp gradient at 0]
        away = x != 0
        mine, clamps = mine[away], clamps[away]
    if not torch.equal(_bits(mine), _bits(clamps)):
        raise AssertionError("MyReLU's backward and clamp(min=0)'s differ in some bits")


def prop_gradient_at_zero(device: str, dtype: torch.dtype) -> None:

    x = torch.tensor([-1.0, -0.0, 0.0, 1.0], dtype=dtype, device=device)
    ones = torch.ones_like(x)
    at_zero = fact("clamp_min_grad_at_zero")
    got = {
        "clamp(min=0)": (_grad(lambda t: t.clamp(min=0), x, ones).tolist(), [0.0, at_zero, at_zero, 1.0]),
        "relu": (_grad(torch.relu, x, ones).tolist(), [0.0, 0.0, 0.0, 1.0]),
        "MyReLU": (_grad(MyReLU.apply, x, ones).tolist(), [0.0, 1.0, 1.0, 1.0]),
    }
    wrong = [f"{name} passes {g} at x = [-1, -0, 0, 1], expected {w}" for name, (g, w) in got.items() if g != w]
    if wrong:
        raise AssertionError("; ".join(wrong) + " (specs/torch_behaviour.toml clamp_min_grad_at_zero)")


def _within(what: str, manual: torch.Tensor, auto: torch.Tensor, bound: torch.Tensor, dtype: torch.dtype) -> None:
    """|manual - autograd| <= atol + rtol * sum|terms| (specs/tolerances.toml [gradients])."""
    rtol, atol = tolerance("gradients", str(dtype).removeprefix("torch."))
    error = (manual.detach().cpu().double() - auto.detach().cpu().double()).abs()
    bad = ~(error <= atol + rtol * bound)
    if bool(bad.any()):
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.numel()} entries differ from autograd by more "
                             f"than atol + rtol * sum|terms| (rtol={rtol:g}, atol={atol:g})")


def prop_mlp_manual_backward(device: str, dtype: torch.dtype) -> None:

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 10, generator=g, dtype=dtype), torch.randn(16, 3, generator=g, dtype=dtype)
    w1, w2 = torch.randn(10, 8, generator=g, dtype=dtype), torch.randn(8, 3, generator=g, dtype=dtype)
    dev = torch.device(device)
    with full_precision_matmul(dev):
        x, y = x.to(dev), y.to(dev)
        w1, w2 = w1.to(dev).requires_grad_(), w2.to(dev).requires_grad_()
        h = x.mm(w1)  # seeded normals: no exact zeros, so clamp's convention at 0 does not enter
        h_relu = h.clamp(min=0)
        y_pred = h_relu.mm(w2)
        auto_w1, auto_w2 = torch.autograd.grad((y_pred - y).pow(2).sum(), (w1, w2))
        grad_w1, grad_w2 = mlp_tensor.backward(x, y, w1.detach(), w2.detach(), h.detach(), h_relu.detach(),
                                               y_pred.detach())
    # the same gradients computed with absolute values: what their rounding error scales with
    xd, w2d, hd, yd, pd = (t.detach().cpu().double() for t in (x, w2, h, y, y_pred))
    abs_grad_y = (2.0 * (pd - yd)).abs()
    _within("grad_w1", grad_w1, auto_w1, xd.abs().t().mm(abs_grad_y.mm(w2d.abs().t()) * (hd >= 0)), dtype)
    _within("grad_w2", grad_w2, auto_w2, hd.clamp(min=0).abs().t().mm(abs_grad_y), dtype)


def prop_poly_manual_backward(device: str, dtype: torch.dtype) -> None:
    x = torch.linspace(-3.14159, 3.14159, 200, dtype=dtype, device=device)
    y = torch.sin(x)
    coefficients = [torch.tensor(v, dtype=dtype, device=device, requires_grad=True) for v in (0.1, -0.4, 0.7, 0.05)]
    a, b, c, d = coefficients
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    auto = torch.autograd.grad((y_pred - y).pow(2).sum(), coefficients)
    manual = poly_tensor.backward(x, y, y_pred.detach())
    abs_grad_y = (2.0 * (y_pred.detach() - y)).abs().cpu().double()
    for k, (name, m, g) in enumerate(zip("abcd", manual, auto)):
        _within(f"grad_{name}", m, g, (abs_grad_y * x.cpu().double().abs() ** k).sum(), dtype)


def prop_legendre_p3(device: str, dtype: torch.dtype) -> None:
    z = torch.tensor([1.0, -1.0, 0.0, 0.5], dtype=dtype, device=device)
    got = LegendrePolynomial3.apply(z).tolist()
    if got != [1.0, -1.0, 0.0, -0.4375]:
        raise AssertionError(f"P3 at [1, -1, 0, 0.5] is {got}, expected [1, -1, 0, -0.4375]")


@dataclass(frozen=True)
class Property:
    variant: str  # the variant whose code it checks, or the building block (for --variants, the verdict)
    name: str
    check: Callable[[str, torch.dtype], None]
    variants: tuple[str, ...] = ()  # a building block's: the programs that use it
    dtype_free: bool = False  # the same in every dtype: checked once

    @property
    def label(self) -> str:
        return f"{self.variant}: {self.name}"

    def concerns(self, variant: str) -> bool:
        return variant == self.variant or variant in self.variants


def _block_property(fixed) -> Property:
    def check(device: str, dtype: torch.dtype) -> None:
        problems = fixed.problems(device, str(dtype).removeprefix("torch."))
        if problems:
            raise AssertionError("; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""))

    return Property(fixed.block, fixed.label, check, variants_using(fixed.block), fixed.dtype_free)


PROPERTIES = [
    Property("mlp.custom_function", "MyReLU forward equals clamp(min=0) bit for bit", prop_myrelu_forward),
    Property("mlp.custom_function", "MyReLU backward equals clamp(min=0)'s bit for bit, except at 0 where clamp blocks it",
             prop_myrelu_backward),
    Property("mlp.autograd", "gradient at exactly 0: clamp as specs/torch_behaviour.toml states, relu 0, MyReLU 1",
             prop_gradient_at_zero),
    Property("mlp.tensor", "manual backward equals autograd (specs/tolerances.toml [gradients])",
             prop_mlp_manual_backward),
    Property("poly.tensor", "manual gradients equal autograd (specs/tolerances.toml [gradients])",
             prop_poly_manual_backward),
    Property("poly.custom_function", "LegendrePolynomial3 is Legendre's P3 exactly", prop_legendre_p3),
    # the building blocks (specs/building_blocks.toml), on fixed inputs
    *(_block_property(fixed) for fixed in FIXED),
]
PROPERTY_DTYPES = (torch.float32, torch.float64)


def check_property(prop: Property, device: str, dtype: str) -> tuple[bool, str]:
    """(passed, message): the property on `device` in `dtype`, at one thread (as the runs). A fact of
    specs/torch_behaviour.toml that this torch contradicts fails it, naming the fact."""
    try:
        with thread_count(1):
            prop.check(device, getattr(torch, dtype))
    except (AssertionError, FactChanged) as exc:
        return False, f"{prop.label} [{device} {dtype}]: {exc}"
    return True, ""
