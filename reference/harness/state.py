"""Per-step fingerprints of a run's state: where two runs part, found from the state, not the losses.

Note [the state parts before the loss]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Two runs' parameters can differ steps before any of their losses does: a one-ulp change of a
weight often leaves a float32 sum of squares bitwise equal (seen: clamp's gradient at an exact zero
under MKL_CBWR=COMPATIBLE changed the weights at one step and the loss only 25 steps later). So the
step where two runs part is the first whose *state* differs, and op localization traces that step;
tracing the step before the first differing loss names a consumer of an earlier difference.

StateDigests keeps, for every step t, a 32-bit fingerprint of the state entering step t (after step
t-1's update): every floating tensor and array the run started from (weights, data, a module's
parameters and buffers) and the buffers of every optimizer the run steps (momentum, Adam's moments).
digests[steps] is the state after the last step. Cost: a weighted integer sum of the bits of every
tensor at every step (benchmarks/bench_state.py). Every tensor is read again: a write through
`.data` (mlp.variable) does not bump the tensor's version counter, so no write can be assumed absent.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from ..private import outside_dispatch_modes

_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_MASK = (1 << 64) - 1


class _Weights:
    """Fixed pseudo-random odd int64 weights, so that two changed elements cannot cancel in the sum."""

    def __init__(self) -> None:
        self._w = torch.empty(0, dtype=torch.int64)

    def __call__(self, n: int) -> torch.Tensor:
        if self._w.numel() < n:
            g = torch.Generator().manual_seed(0x5EED)
            self._w = torch.randint(-2**62, 2**62, (max(n, 1024),), generator=g, dtype=torch.int64) | 1
        return self._w[:n]


_weights = _Weights()


def tensor_digest(t: torch.Tensor) -> int:
    """A 64-bit weighted sum of the bits of a floating tensor (any device), exact and order-fixed."""
    flat = t.detach().reshape(-1)
    if flat.device.type != "cpu":
        flat = flat.cpu()
    bits = flat.contiguous().view(_INT_VIEW[flat.element_size()]).to(torch.int64)
    return int((bits * _weights(bits.numel())).sum()) & _MASK


def _state_tensors(placed: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name, value in placed.items():
        if isinstance(value, torch.nn.Module):
            out += [(f"{name}.{k}", v) for k, v in value.state_dict(keep_vars=True).items() if v.is_floating_point()]
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            out.append((name, value))
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
            out.append((name, value))
    return out


class StateDigests:
    """Fingerprints of the state entering each step; the harness calls at_step() from record(t)."""

    def __init__(self, placed: Mapping[str, Any]):
        self._tensors = _state_tensors(placed)
        self._optimizers: list[torch.optim.Optimizer] = []
        self.digests: list[str] = []

    @classmethod
    @contextlib.contextmanager
    def during_run(cls, placed: Mapping[str, Any]) -> Iterator["StateDigests"]:
        """Collects the optimizers the run steps (a global step hook, removed after the run)."""
        digests = cls(placed)

        def seen(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            if not any(o is optimizer for o in digests._optimizers):
                digests._optimizers.append(optimizer)

        handle = register_optimizer_step_post_hook(seen)
        try:
            yield digests
        finally:
            handle.remove()

    @staticmethod
    def _digest(value: Any) -> int:
        if isinstance(value, np.ndarray):
            return tensor_digest(torch.from_numpy(np.ascontiguousarray(value)))
        return tensor_digest(value)

    def _optimizer_buffers(self) -> list[Any]:
        out = []
        for opt in self._optimizers:
            for group in opt.param_groups:
                for p in group["params"]:
                    out += [v for _, v in sorted(opt.state.get(p, {}).items())
                            if isinstance(v, torch.Tensor) and v.is_floating_point()]
        return out

    def _now(self) -> str:
        with outside_dispatch_modes():  # not the program's ops: kept out of its op trace
            return self._fingerprint()

    def _fingerprint(self) -> str:
        total = 0
        values = [v for _, v in self._tensors] + self._optimizer_buffers()
        for i, value in enumerate(values):
            total = (total + self._digest(value) * (2 * i + 1)) & _MASK
        return f"{(total ^ (total >> 32)) & 0xFFFFFFFF:08x}"

    def at_step(self) -> None:
        """record(t) was called: the state entering step t (the forward pass writes no state)."""
        self.digests.append(self._now())

    def at_end(self) -> None:
        self.digests.append(self._now())


def first_state_difference(a: list[str] | None, b: list[str] | None) -> int | None:
    """The first index whose state fingerprints differ (digests[t]: entering step t), None when
    equal or when either run kept none."""
    if not a or not b:
        return None
    for t, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return t
    return None if len(a) == len(b) else min(len(a), len(b))
