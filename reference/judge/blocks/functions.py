"""Losses and layers, specified on their own against float64 formulas (specs/building_blocks.toml):

    MSELoss(reduction="sum")   sum (x - y)^2
    CrossEntropyLoss()         mean over the batch of logsumexp(z_i) - z_i[y_i] (label smoothing 0)
    nn.Linear's initialisation U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
                               (kaiming_uniform_ with a = sqrt(5)), drawn bit for bit from the generator
    Flatten(0, 1)              (N, 1) -> (N,), the same values in the same order

Each returns what differs ([]: it holds), naming the piece and the term.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ...tolerances import tolerance


def _within(got: float, want: float, scale: float, what: str, dtype: str) -> list[str]:
    rtol, atol = tolerance("losses", dtype)
    allowed = atol + rtol * scale
    if abs(got - want) <= allowed:
        return []
    return [f"{what} is {got!r}, the formula gives {want!r}: {abs(got - want) / max(allowed, 1e-300):.3g} x its "
            f"rounding bound ({dtype})"]


def mse_sum_problems(x: np.ndarray, y: np.ndarray, dtype: str, device: str = "cpu") -> list[str]:
    """MSELoss(reduction='sum') against sum (x - y)^2 (all terms >= 0: bounded relative to the result)."""
    t = getattr(torch, dtype)
    a, b = torch.tensor(x, dtype=t, device=device), torch.tensor(y, dtype=t, device=device)
    got = float(torch.nn.MSELoss(reduction="sum")(a, b))
    xa, ya = a.cpu().double().numpy(), b.cpu().double().numpy()
    want = float(np.sum((xa - ya) ** 2))
    return _within(got, want, want, "MSELoss(reduction='sum')", dtype)


def cross_entropy_problems(logits: np.ndarray, target: np.ndarray, dtype: str, device: str = "cpu") -> list[str]:
    """CrossEntropyLoss() (mean, no label smoothing) against the log-sum-exp formula; the bound scales
    with mean(|max z_i| + |z_i[y_i]| + log C), what the rounding of each term is proportional to."""
    t = getattr(torch, dtype)
    z = torch.tensor(logits, dtype=t, device=device)
    y = torch.tensor(target, dtype=torch.long, device=device)
    got = float(torch.nn.CrossEntropyLoss()(z, y))
    zd = z.cpu().double().numpy()
    m = zd.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(zd - m).sum(axis=1, keepdims=True)))[:, 0]
    picked = zd[np.arange(len(target)), target]
    want = float(np.mean(lse - picked))
    scale = float(np.mean(np.abs(m[:, 0]) + np.abs(picked) + math.log(zd.shape[1])))
    return _within(got, want, scale, "CrossEntropyLoss() (mean of logsumexp(z) - z[y])", dtype)


def linear_init_problems(fan_in: int, fan_out: int, seed: int) -> list[str]:
    """nn.Linear(fan_in, fan_out)'s weight and bias equal U(-1/sqrt(fan_in), 1/sqrt(fan_in)) drawn, weight
    then bias, from the same generator state, bit for bit (float32, as the programs make them)."""
    torch.manual_seed(seed)
    layer = torch.nn.Linear(fan_in, fan_out)
    bound = 1 / math.sqrt(fan_in)
    torch.manual_seed(seed)
    weight = torch.empty(fan_out, fan_in).uniform_(-bound, bound)
    bias = torch.empty(fan_out).uniform_(-bound, bound)
    problems = []
    for name, got, want in (("weight", layer.weight, weight), ("bias", layer.bias, bias)):
        outside = int(((got < -bound) | (got > bound)).sum())
        if outside:
            problems.append(f"nn.Linear({fan_in}, {fan_out}) {name}: {outside} values outside the documented "
                            f"bound 1/sqrt(fan_in) = {bound:.6g} (kaiming_uniform_ with a = sqrt(5))")
        elif not torch.equal(got.detach(), want):
            problems.append(f"nn.Linear({fan_in}, {fan_out}) {name}: not the documented U(-1/sqrt(fan_in), "
                            f"1/sqrt(fan_in)) draw from the same generator state (max |difference| "
                            f"{float((got.detach() - want).abs().max()):.3g})")
    return problems


def flatten_problems(values: np.ndarray, dtype: str) -> list[str]:
    """Flatten(0, 1) of an (N, 1) tensor is the (N,) tensor of the same values in the same order."""
    x = torch.tensor(values, dtype=getattr(torch, dtype)).reshape(-1, 1)
    got = torch.nn.Flatten(0, 1)(x)
    if tuple(got.shape) != (x.shape[0],):
        return [f"Flatten(0, 1) of shape {tuple(x.shape)} gave shape {tuple(got.shape)}, expected ({x.shape[0]},)"]
    if not torch.equal(got, x[:, 0]):
        return ["Flatten(0, 1) changed the values or their order"]
    return []
