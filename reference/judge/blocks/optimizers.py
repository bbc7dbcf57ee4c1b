"""One optimizer step, specified on its own: torch's step() against the algorithm as torch documents it,
computed in float64 from the same inputs (specs/building_blocks.toml cites each docs page).

    SGD      b_1 = g, b_t = mu b_{t-1} + (1 - tau) g (mu != 0); theta -= gamma b (or g when mu = 0)
    Adam     m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
             theta -= gamma (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
    RMSprop  v = alpha v + (1 - alpha) g^2; theta -= gamma g / (sqrt(v) + eps)
    manual   theta -= lr * grad (the tutorial's own update): the same two roundings, so bit for bit

Note [the rounding bound of one step]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
torch computes a step in the parameter's dtype, in its own operation order (lerp for Adam's first
moment, a fused add with alpha, addcdiv); the reference computes the documented formula exactly
enough (float64 from the same dtype-rounded inputs). Each quantity is a short chain of roundings, so
each is within r of the reference, scaled by the magnitudes of the terms it sums (r = c u: u the
dtype's unit roundoff, c the number of roundings on the longest path times a margin; the pair is
specs/tolerances.toml [optimizer_step]):
  a moment or buffer  r (|first term| + |second term|)   (a difference may cancel: scale by the terms)
  a square average    r v'                               (positive terms: relative to the result)
  the parameter       r (|theta'| + |update|) + gamma |error of the buffer or first moment| / denominator
A wrong formula (a missing bias correction, eps inside the root, the first step's buffer damped) is
off by the size of the term itself: many orders of magnitude beyond the bound for the inputs drawn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ...tolerances import tolerance

OPTIMIZERS = ("SGD", "Adam", "RMSprop", "manual")


@dataclass
class StepCase:
    """One step from a given state: what the property draws, or what `check` fixes."""

    optimizer: str
    hyper: Mapping[str, float]  # as the programs pass them: lr, and momentum for SGD
    param: np.ndarray
    grad: np.ndarray
    state: Mapping[str, Any] = field(default_factory=dict)  # before the step: {} is the first step
    dtype: str = "float32"

    def label(self) -> str:
        shown = ", ".join(f"{k}={v:g}" for k, v in self.hyper.items())
        when = "first step" if not self.state else f"step {int(self.state.get('step', 1)) + 1}"
        return f"{self.optimizer}({shown}) {when}, {self.dtype} {list(self.param.shape)}"


def _cast(values: Any, dtype: str) -> np.ndarray:
    """The values as the step sees them: rounded to the parameter's dtype."""
    return np.asarray(values, dtype=np.float64).astype(dtype).astype(np.float64)


# --- the documented algorithms, float64 ---------------------------------------------------------------

def _defaults(optimizer: str) -> dict[str, float]:
    """The constants the programs leave at torch's defaults (asserted by tests/test_torch_behaviour.py)."""
    return {"SGD": dict(momentum=0.0, dampening=0.0), "Adam": dict(beta1=0.9, beta2=0.999, eps=1e-8),
            "RMSprop": dict(alpha=0.99, eps=1e-8), "manual": {}}[optimizer]


def documented_step(case: StepCase, **variant: Any) -> dict[str, np.ndarray]:
    """The step as torch's documentation writes it; `variant` swaps one term for a plausible mistake
    (used to name the term a failing step gets wrong)."""
    h = {**_defaults(case.optimizer), **case.hyper}
    p, g = _cast(case.param, case.dtype), _cast(case.grad, case.dtype)
    lr = h["lr"]
    state = {k: (_cast(v, case.dtype) if isinstance(v, np.ndarray) else v) for k, v in case.state.items()}
    if case.optimizer == "manual":  # the same two operations in the same dtype: the bits to expect
        dt = np.dtype(case.dtype)
        return {"param": (p.astype(dt) - dt.type(lr) * g.astype(dt)).astype(np.float64)}
    if case.optimizer == "SGD" and h.get("momentum", 0.0) == 0.0:
        return {"param": p - lr * g}
    if case.optimizer == "SGD":
        mu, tau = h["momentum"], h.get("dampening", 0.0)
        if "momentum_buffer" not in state or variant.get("damped_first_buffer"):
            buf = (1 - tau) * g if variant.get("damped_first_buffer") else g
        else:
            buf = mu * state["momentum_buffer"] + (1 - tau) * g
        return {"param": p - lr * buf, "momentum_buffer": buf}
    if case.optimizer == "Adam":
        b1, b2, eps = h["beta1"], h["beta2"], h["eps"]
        t = int(state.get("step", 0)) + 1
        m0 = state.get("exp_avg", np.zeros_like(p))
        v0 = state.get("exp_avg_sq", g * g if variant.get("v_starts_at_g2") else np.zeros_like(p))
        m = b1 * m0 + (1 - b1) * g
        v = b2 * v0 + (1 - b2) * g * g
        bc1, bc2 = (1.0, 1.0) if variant.get("no_bias_correction") else (1 - b1**t, 1 - b2**t)
        if variant.get("eps_inside_root"):
            denom = np.sqrt(v / bc2 + eps)
        elif variant.get("eps_before_correction"):
            denom = (np.sqrt(v) + eps) / math.sqrt(bc2)
        else:
            denom = np.sqrt(v / bc2) + eps
        return {"param": p - lr * (m / bc1) / denom, "exp_avg": m, "exp_avg_sq": v, "step": t}
    if case.optimizer == "RMSprop":
        alpha, eps = h["alpha"], h["eps"]
        v = alpha * state.get("square_avg", np.zeros_like(p)) + (1 - alpha) * g * g
        denom = np.sqrt(v + eps) if variant.get("eps_inside_root") else np.sqrt(v) + eps
        return {"param": p - lr * g / denom, "square_avg": v, "step": int(state.get("step", 0)) + 1}
    raise ValueError(f"unknown optimizer {case.optimizer!r}. Valid choices: {', '.join(OPTIMIZERS)}")


# the plausible mistakes a step is tested against, to name the term it gets wrong
VARIANTS = {
    "SGD": {"damped_first_buffer": "the first step's momentum buffer damped: (1 - dampening) g instead of g"},
    "Adam": {"no_bias_correction": "without the bias corrections 1 - beta^t",
             "eps_inside_root": "eps inside the square root: sqrt(v_hat + eps)",
             "eps_before_correction": "eps added before the second bias correction: (sqrt(v) + eps) / sqrt(1 - beta2^t)",
             "v_starts_at_g2": "the second moment starting at g^2 instead of 0"},
    "RMSprop": {"eps_inside_root": "eps inside the square root: sqrt(v + eps)"},
    "manual": {},
}
TERMS = {"exp_avg": "first moment m_t = beta1 m + (1 - beta1) g", "exp_avg_sq": "second moment v_t = beta2 v + (1 - beta2) g^2",
         "momentum_buffer": "momentum buffer b_t = mu b + (1 - dampening) g (b_1 = g)",
         "square_avg": "square average v_t = alpha v + (1 - alpha) g^2", "step": "step count",
         "param": "parameter update"}


# --- torch's step ----------------------------------------------------------------------------------------

def _optimizer(case: StepCase, p: torch.nn.Parameter) -> Callable[[], None]:
    """The step the programs take: the optimizer built as they build it (lr, and momentum for SGD)."""
    if case.optimizer == "manual":
        def step() -> None:
            with torch.no_grad():
                p.sub_(case.hyper["lr"] * p.grad)  # the tutorial's `p -= lr * p.grad`: the same two kernels
        return step
    opt = getattr(torch.optim, case.optimizer)([p], **case.hyper)
    if case.state:
        state: dict[str, Any] = {}
        for key, value in case.state.items():
            if key == "step":  # torch keeps the count as a float32 tensor (capturable or not)
                state[key] = torch.tensor(float(value))
            else:
                state[key] = torch.tensor(np.asarray(value), dtype=p.dtype, device=p.device)
        opt.state[p] = state
    return opt.step


def torch_step(case: StepCase, device: str = "cpu") -> dict[str, np.ndarray]:
    dtype = getattr(torch, case.dtype)
    p = torch.nn.Parameter(torch.tensor(case.param, dtype=dtype, device=device))
    p.grad = torch.tensor(case.grad, dtype=dtype, device=device)
    step = _optimizer(case, p)
    step()
    out = {"param": p.detach().cpu().double().numpy()}
    if case.optimizer != "manual":
        opt_state = getattr(step, "__self__", None)
        for key, value in (opt_state.state.get(p, {}) if opt_state is not None else {}).items():
            if value is not None:  # torch 2.1 keeps momentum_buffer=None without momentum
                out[key] = float(value) if key == "step" else value.detach().cpu().double().numpy()
    return out


# --- the comparison ------------------------------------------------------------------------------------

def _bound(case: StepCase, key: str, ref: Mapping[str, Any]) -> np.ndarray:
    """What rounding allows quantity `key` (See Note [the rounding bound of one step])."""
    r = tolerance("optimizer_step", case.dtype).rtol
    h = {**_defaults(case.optimizer), **case.hyper}
    p, g = _cast(case.param, case.dtype), _cast(case.grad, case.dtype)
    s = {k: (_cast(v, case.dtype) if isinstance(v, np.ndarray) else v) for k, v in case.state.items()}
    if case.optimizer == "manual":
        return np.zeros_like(p)  # the same two operations in the same order: bit for bit
    if key == "exp_avg":
        return r * (h["beta1"] * np.abs(s.get("exp_avg", 0 * p)) + (1 - h["beta1"]) * np.abs(g))
    if key in ("exp_avg_sq", "square_avg"):
        return r * np.abs(ref[key])
    if key == "momentum_buffer":
        return r * (h["momentum"] * np.abs(s.get("momentum_buffer", 0 * p)) + np.abs(g))
    # the parameter: its own rounding, and the update's (its numerator's error carried through)
    update = np.abs(p - ref["param"])
    bound = r * (np.abs(ref["param"]) + update)
    if case.optimizer == "SGD" and "momentum_buffer" in ref:
        bound = bound + h["lr"] * _bound(case, "momentum_buffer", ref)
    if case.optimizer == "Adam":
        denom = np.sqrt(ref["exp_avg_sq"] / (1 - h["beta2"] ** ref["step"])) + h["eps"]
        bound = bound + h["lr"] / (1 - h["beta1"] ** ref["step"]) * _bound(case, "exp_avg", ref) / denom
    return bound


def _beyond(got: Any, want: Any, bound: Any) -> float:
    """The largest |got - want| / bound (inf where the bound is 0 and they differ)."""
    got, want, bound = (np.asarray(x, dtype=np.float64) for x in (got, want, bound))
    diff = np.abs(got - want)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(same, 0.0, np.where(bound > 0, diff / bound, np.inf))
    return float(ratio.max()) if ratio.size else 0.0


def step_problems(case: StepCase, device: str = "cpu") -> list[str]:
    """What torch's step gets wrong against the documented one, each naming the term (and, for the
    update, the mistake it matches); [] when every quantity is within its rounding bound."""
    got, ref = torch_step(case, device), documented_step(case)
    problems = []
    for key, want in sorted(ref.items(), key=lambda kv: kv[0] == "param"):  # the state's terms, then the update
        if key not in got:
            problems.append(f"{case.label()}: torch keeps no {key} ({TERMS.get(key, key)})")
            continue
        if key == "step":
            if got[key] != want:
                problems.append(f"{case.label()}: step count {got[key]:g}, documented {want}")
            continue
        ratio = _beyond(got[key], want, _bound(case, key, ref))
        if ratio > 1:
            problems.append(f"{case.label()}: {TERMS.get(key, key)} differs from the documented one by "
                            f"{ratio:.3g} x its rounding bound" + (_diagnosis(case, got) if key == "param" else ""))
    return problems


def _diagnosis(case: StepCase, got: Mapping[str, np.ndarray]) -> str:
    for name, text in VARIANTS[case.optimizer].items():
        alt = documented_step(case, **{name: True})
        if _beyond(got["param"], alt["param"], _bound(case, "param", alt)) <= 1:
            return f"; it matches the step {text}"
    return "; it matches none of the known mistakes"
