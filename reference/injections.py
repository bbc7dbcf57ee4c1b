"""Changes a torch release, a kernel or a container could make to what the tutorials compute,
injected by monkeypatching torch in this process: the gate's tests and benchmarks use them to show
that the gate catches them (benchmarks/inject_changes.py, reference/calibration/ensemble.py, the tests)."""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator

import torch


@contextlib.contextmanager
def patched(obj, name: str, value) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def with_default(cls, **changes) -> Callable:
    original = cls.__init__

    @functools.wraps(original)
    def init(self, params, *args, **kwargs):
        for key, value in changes.items():
            kwargs[key] = value
        original(self, params, *args, **kwargs)

    return patched(cls, "__init__", init)


def relu_style_clamp():
    """clamp(min=0) whose gradient at exactly 0 is 0 (as torch.relu's), instead of torch 2.13's 1.

    From torch 2.14 clamp's own gradient there is 0 already: See Note [clamp gradient at 0]."""
    original = torch.Tensor.clamp

    def clamp(self, min=None, max=None):
        if min == 0 and max is None:
            return torch.relu(self)
        return original(self, min=min, max=max)

    return patched(torch.Tensor, "clamp", clamp)


def mse_mean_times_n():
    """MSELoss(reduction='sum') computed as mean x N: the same value in exact arithmetic."""
    original = torch.nn.functional.mse_loss

    def mse_loss(input, target, *args, reduction="mean", **kwargs):
        if reduction == "sum":
            return original(input, target, reduction="mean") * input.numel()
        return original(input, target, *args, reduction=reduction, **kwargs)

    return patched(torch.nn.functional, "mse_loss", mse_loss)


def mse_mean():
    original = torch.nn.MSELoss.__init__

    def init(self, *args, **kwargs):
        kwargs["reduction"] = "mean"
        original(self, *args, **kwargs)

    return patched(torch.nn.MSELoss, "__init__", init)


def kaiming_a0():
    original = torch.nn.init.kaiming_uniform_

    def kaiming_uniform_(tensor, a=0, *args, **kwargs):
        return original(tensor, 0.0, *args, **kwargs)

    return patched(torch.nn.init, "kaiming_uniform_", kaiming_uniform_)


def tf32_like_matmul():
    """float32 matmul inputs rounded to TF32's 10-bit mantissa, as a GPU with TF32 on would."""
    def round_tf32(t: torch.Tensor) -> torch.Tensor:
        if t.dtype != torch.float32:
            return t
        bits = t.detach().contiguous().view(torch.int32)
        rounded = ((bits + 0x1000) & ~0x1FFF).view(torch.float32)
        return t + (rounded - t.detach())  # rounded value, gradient of the identity

    originals = {name: getattr(torch.Tensor, name) for name in ("mm", "__matmul__")}
    linear = torch.nn.functional.linear

    stack = contextlib.ExitStack()
    stack.enter_context(patched(torch.Tensor, "mm", lambda a, b: originals["mm"](round_tf32(a), round_tf32(b))))
    stack.enter_context(patched(torch.nn.functional, "linear",
                                lambda x, w, b=None: linear(round_tf32(x), round_tf32(w), b)))
    return stack


_ACTIVE: list[str] = []  # the injections in effect in this process, innermost last


def active() -> tuple[str, ...]:
    """The names of the INJECTIONS in effect: a run made now is not the program's own (the gate's
    shared runs refuse to be made under one; benchmarks/bench_gate.py replays it under the same)."""
    return tuple(_ACTIVE)


@contextlib.contextmanager
def _in_effect(name: str, change: Callable[[], contextlib.AbstractContextManager]) -> Iterator[None]:
    with change():
        _ACTIVE.append(name)
        try:
            yield
        finally:
            _ACTIVE.remove(name)


_CHANGES: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "adam eps 1e-8 -> 1e-6": lambda: with_default(torch.optim.Adam, eps=1e-6),
    "adam betas (0.9, 0.999) -> (0.9, 0.99)": lambda: with_default(torch.optim.Adam, betas=(0.9, 0.99)),
    "sgd dampening 0 -> 0.01": lambda: with_default(torch.optim.SGD, dampening=0.01),
    "sgd weight_decay 0 -> 1e-6": lambda: with_default(torch.optim.SGD, weight_decay=1e-6),
    "rmsprop alpha 0.99 -> 0.9": lambda: with_default(torch.optim.RMSprop, alpha=0.9),
    "mse 'sum' -> 'mean'": mse_mean,
    "mse 'sum' computed as mean x N": mse_mean_times_n,
    "clamp(min=0) grad at 0: 1 -> 0 (relu's)": relu_style_clamp,
    "Linear init kaiming a=sqrt(5) -> 0": kaiming_a0,
    "float32 matmul at TF32 precision": tf32_like_matmul,
}
INJECTIONS: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    name: functools.partial(_in_effect, name, change) for name, change in _CHANGES.items()
}
