"""The documents' errata you can run: each test rebuilds the documented statements (our own short
reconstruction of the lines the document shows, run with exec in a namespace like the program's)
and shows what they do; and the documented programs the variants reproduce (blog-nn-2022's
TwoLayerNet with Adam, blog-poly's float64-drawn autograd program), each against its own run.
Ids: specs/sources.toml."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference
from reference.catalogue import load_toml
from reference.harness import seed_everything
from reference.result_line import result_line
from reference.variants import mlp_autograd, poly_autograd

POLY_AUTOGRAD = load_toml("tolerances.toml")["errata"]["poly.autograd"]


def _exec(source: str, namespace: dict) -> dict:
    exec(compile(source, "<documented program>", "exec"), namespace)  # noqa: S102 - our own text
    return namespace


# --- blog-tutorial-2020: the autograd update with grad_w1 / grad_w2 ------------------------------

# The loop of blog-tutorial-2020's autograd program; {update} is how it updates w1 and w2.
AUTOGRAD_LOOP = """
for t in range(steps):
    y_pred = x.mm(w1).clamp(min=0).mm(w2)
    loss = (y_pred - y).pow(2).sum()
    losses.append(loss.item())
    loss.backward()
    with torch.no_grad():
        w1 -= lr * {g1}
        w2 -= lr * {g2}
        w1.grad.zero_()
        w2.grad.zero_()
"""


def _autograd_namespace(steps: int) -> dict:
    """What the program has defined when its loop starts: torch, data, weights, lr (no grad_w1)."""
    seed_everything(0)
    hp = reference.VARIANTS["mlp.autograd"].hyperparameters
    drawn = mlp_autograd.make(hp["N"], hp["D_in"], hp["H"], hp["D_out"])
    return dict(torch=torch, lr=hp["lr"], steps=steps, losses=[], **drawn)


def test_blog_tutorial_2020_autograd_update_with_grad_w1_raises_name_error_on_the_first_step():
    ns = _autograd_namespace(steps=500)
    w1_before = ns["w1"].detach().clone()
    with pytest.raises(NameError, match="name 'grad_w1' is not defined"):
        _exec(AUTOGRAD_LOOP.format(g1="grad_w1", g2="grad_w2"), ns)
    assert len(ns["losses"]) == 1  # step 0's loss was computed; no update happened
    assert torch.equal(ns["w1"].detach(), w1_before)


def test_blog_tutorial_2020_autograd_update_with_w1_grad_is_the_mlp_autograd_run_bit_for_bit():
    ns = _exec(AUTOGRAD_LOOP.format(g1="w1.grad", g2="w2.grad"), _autograd_namespace(steps=20))
    assert ns["losses"] == reference.run("mlp.autograd", steps=20, threads=1).losses


# --- blog-poly: a.itme() in the tensor program's last line -----------------------------------------

DOCUMENTED_PRINT = "print(f'Result: y = {a.%s()} + {b.item()} x + {c.item()} x^2 + {d.item()} x^3')"


def _printing_namespace(params: dict) -> tuple[dict, list[str]]:
    printed: list[str] = []
    return dict(print=lambda *args: printed.append(" ".join(map(str, args))), **params), printed


def test_blog_poly_tensor_program_ends_with_attribute_error_from_a_itme_after_training(cached_run):
    t = cached_run("poly.tensor", threads=1)
    assert len(t.losses) == reference.VARIANTS["poly.tensor"].steps  # the training itself is unaffected
    ns, printed = _printing_namespace(t.params)
    with pytest.raises(AttributeError, match="'Tensor' object has no attribute 'itme'"):
        _exec(DOCUMENTED_PRINT % "itme", ns)
    assert printed == []


def test_blog_poly_tensor_print_with_a_item_prints_the_runs_result_line(cached_run):
    t = cached_run("poly.tensor", threads=1)
    ns, printed = _printing_namespace(t.params)
    _exec(DOCUMENTED_PRINT % "item", ns)
    assert printed == [result_line(t)]


# --- blog-nn-2022: TwoLayerNet trained with Adam ---------------------------------------------------

NN_2022_MODULE_ADAM = """
class TwoLayerNet(torch.nn.Module):
    def __init__(self, D_in, H, D_out):
        super().__init__()
        self.linear1 = torch.nn.Linear(D_in, H)
        self.linear2 = torch.nn.Linear(H, D_out)

    def forward(self, x):
        return self.linear2(self.linear1(x).clamp(min=0))

x = torch.randn(N, D_in, device=device)
y = torch.randn(N, D_out, device=device)
model = TwoLayerNet(D_in, H, D_out)
criterion = torch.nn.MSELoss(reduction='sum')
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
for i in range(steps):
    model.to(device)  # as documented: on every step
    y_pred = model(x)
    loss = criterion(y_pred, y)
    losses.append(loss.item())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""


def test_module_adam_variant_is_mlp_module_with_optimizer_adam_bit_for_bit(cached_run):
    a = cached_run("mlp.module_adam", threads=1)
    b = cached_run("mlp.module", optimizer="adam", threads=1)
    assert a.losses == b.losses
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)


def test_module_adam_variant_reproduces_blog_nn_2022s_last_program_seeded_on_the_cpu():
    """The program as documented, on the CPU and seeded, without its unused w1 / w2 (on the
    document's GPU they drew from the CUDA generator, not the CPU one that initialises the model)."""
    seed_everything(0)
    hp = reference.VARIANTS["mlp.module_adam"].hyperparameters
    ns = _exec(NN_2022_MODULE_ADAM, dict(torch=torch, device=torch.device("cpu"), steps=20, losses=[],
                                         N=hp["N"], D_in=hp["D_in"], H=hp["H"], D_out=hp["D_out"]))
    assert ns["losses"] == reference.run("mlp.module_adam", steps=20, threads=1).losses


# --- blog-poly: the autograd program drawn in float64 (dtype = float) --------------------------------

BLOG_POLY_AUTOGRAD = """
x = torch.linspace(-math.pi, math.pi, 2000, dtype=dtype)
y = torch.sin(x)
a = torch.randn((), dtype=dtype, requires_grad=True)
b = torch.randn((), dtype=dtype, requires_grad=True)
c = torch.randn((), dtype=dtype, requires_grad=True)
d = torch.randn((), dtype=dtype, requires_grad=True)
for t in range(steps):
    loss = (a + b * x + c * x ** 2 + d * x ** 3 - y).pow(2).sum()
    losses.append(loss.item())
    loss.backward()
    with torch.no_grad():
        for p in (a, b, c, d):
            p -= 1e-6 * p.grad
            p.grad = None
"""


def test_blog_poly_float64_program_is_poly_autograd_with_float64_draws_bit_for_bit():
    seed_everything(0)
    ns = _exec(BLOG_POLY_AUTOGRAD, dict(torch=torch, math=math, dtype=float, steps=30, losses=[]))
    assert ns["x"].dtype == torch.float64  # dtype = float is float64
    run = reference.run("poly.autograd", dtype="float64", draw_dtype="float64", steps=30, threads=1)
    assert ns["losses"] == run.losses


def test_float32_draws_are_the_float64_draws_rounded_so_both_programs_start_close():
    starts = {}
    for draw in ("float32", "float64"):
        seed_everything(0)
        starts[draw] = poly_autograd.make(2000, draw)
    for k in "abcd":
        assert torch.equal(starts["float64"][k].detach().float(), starts["float32"][k].detach()), k
    assert not torch.equal(starts["float64"]["x"], starts["float32"]["x"].double())  # not the same numbers


def test_float64_drawn_run_differs_from_the_cast_run_by_the_measured_amount(cached_run):
    cast = np.array(cached_run("poly.autograd", dtype="float64", threads=1).losses)
    drawn = np.array(cached_run("poly.autograd", dtype="float64", draw_dtype="float64", threads=1).losses)
    difference = float(np.max(np.abs(drawn - cast) / np.abs(cast)))
    tol = POLY_AUTOGRAD["float64_draws_max_loss_difference"]
    np.testing.assert_allclose(difference, POLY_AUTOGRAD["float64_draws_max_loss_difference_seed0"],
                               rtol=tol["rtol"], atol=tol["atol"])
