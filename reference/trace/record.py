"""Op traces, recording: every aten op of chosen steps of a run, with a fingerprint of each output.

A trace records, for chosen steps of a run, every aten operator the step executes, in order:
forward, backward (ops run by the autograd engine) and the update (optimizer kernels, foreach and
fused ones included), each with its phase, output shapes and dtypes, and a fingerprint of every
output: an exact digest of its bits (blake2b) plus float64 summaries (sum, sum of |x|, max |x|).
Ops that produce no new values (views, detach, empty allocations) are left out. The state the run
starts from (data, parameters) is fingerprinted too, so a changed initialisation or data draw is
named as such.

    reference.run(id, trace_steps=[0, 1, 2])   -> Trajectory.trace (a JSON-able dict)

The harness drives a Recorder (reference/harness/running.py); the private torch APIs it needs are
in reference/private.py.

Phases. The harness calls record(t, loss) once per step, after the forward pass and before the
update. Ops after record(t) run inside the autograd engine are `backward`; the other ops after it
are `update` (where no engine ran, as in the hand-written backward passes of *.tensor, the ops
before the first in-place write into the start state are `backward`). Step t+1's forward starts
after the last op of step t that ran in the engine, with grad mode off, or wrote in place into the
start state or a gradient.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from ..private import dispatch_mode_base, in_autograd_engine, preload_dynamo
from .io import SCHEMA

PHASES = ("forward", "backward", "update")

# Ops whose output is memory, not values (uninitialised) or bookkeeping.
_SKIP_NAMES = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_",
               "set_", "_local_scalar_dense", "detach", "lift_fresh", "alias", "record_stream"}


# --- fingerprints ---------------------------------------------------------------------------------

def _sig(x: float) -> float | str:
    return float(f"{x:.9g}") if math.isfinite(x) else repr(x)


def fingerprint(t: Any) -> list:
    """[digest, sum, sum|x|, max|x|] of a tensor or array (summaries None for non-floating)."""
    if isinstance(t, torch.Tensor):
        c = t.detach()
        if c.device.type != "cpu":
            c = c.to("cpu")
        c = c.contiguous()
        floating = c.is_floating_point()
        raw = c.reshape(-1).view(torch.uint8).numpy().tobytes() if c.numel() else b""
        digest = hashlib.blake2b(raw, digest_size=8).hexdigest()
        if not floating or c.numel() == 0:
            return [digest, None, None, None]
        d = c.to(torch.float64)
        a = d.abs()
        return [digest, _sig(float(d.sum())), _sig(float(a.sum())), _sig(float(a.max()))]
    array = np.ascontiguousarray(t)
    digest = hashlib.blake2b(array.tobytes(), digest_size=8).hexdigest()
    if array.dtype.kind != "f" or array.size == 0:
        return [digest, None, None, None]
    d = array.astype(np.float64)
    return [digest, _sig(float(d.sum())), _sig(float(np.abs(d).sum())), _sig(float(np.abs(d).max()))]


def _describe(t: Any) -> tuple[list[int], str]:
    return list(t.shape), str(t.dtype).replace("torch.", "")


def initial_state(placed: Mapping[str, Any]) -> list[list]:
    """[name, shape, dtype, *fingerprint] of every tensor / array the run starts from: data,
    weights, a module's parameters and buffers, a dataset's tensors."""
    out = []
    for name, value in placed.items():
        items: list[tuple[str, Any]] = []
        if isinstance(value, (torch.Tensor, np.ndarray)):
            items = [(name, value)]
        elif isinstance(value, torch.nn.Module):
            items = [(f"{name}.{k}", v) for k, v in value.state_dict().items()]
        elif hasattr(value, "__dict__"):  # e.g. a dataset holding its images and labels
            items = [(f"{name}.{k}", v) for k, v in vars(value).items() if isinstance(v, (torch.Tensor, np.ndarray))]
        for key, tensor in items:
            out.append([key, *_describe(tensor), *fingerprint(tensor)])
    return out


# --- recording ------------------------------------------------------------------------------------

def _tensors(value: Any) -> Iterable[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            if isinstance(v, torch.Tensor):
                yield v


class Recorder:
    """Collects the ops of the traced steps of one run; the harness drives it (see harness.running).

    Raw ops are buffered from record(t-1) (or the start) to record(t+1) for every traced step t, and
    split into steps and phases when the boundaries are known."""

    def __init__(self, steps: Iterable[int], last_step: int, placed: Mapping[str, Any]):
        self.steps = sorted(set(int(s) for s in steps))
        bad = [s for s in self.steps if s < 0 or s > last_step]
        if bad:
            raise ValueError(f"trace_steps {bad} outside the run's steps. Valid choices: 0..{last_step}")
        self.last_step = last_step
        self.initial = initial_state(placed)
        self._state_ptrs = set()
        for value in placed.values():
            tensors = list(value.parameters()) + list(value.buffers()) if isinstance(value, torch.nn.Module) else \
                list(_tensors(value))
            self._state_ptrs |= {t.data_ptr() for t in tensors if t.numel()}
        self._params = [t for v in placed.values() for t in
                        (v.parameters() if isinstance(v, torch.nn.Module) else _tensors(v))]
        self._buffer: list[dict] = []  # raw ops since the last boundary
        self._after_loss: int | None = None  # the step whose loss was recorded last
        self.traced: dict[int, list[list]] = {}
        self.links: dict[int, list[list]] = {}  # [value, value seen through a view] of the traced steps
        self._mode = None
        self._wanted = set(self.steps)

    # -- the dispatch mode is on only around the traced steps (no cost otherwise)
    def _on(self) -> None:
        if self._mode is None:
            self._mode = _make_mode(self)
            self._mode.__enter__()

    def _off(self) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None

    def start(self) -> None:
        preload_dynamo()  # not first inside the dispatch mode (an optimizer's first step imports it)

        if 0 in self._wanted:
            self._on()

    def on_record(self, t: int) -> None:
        """record(t, loss) was called: step t's forward is done."""
        prev = self._after_loss
        if prev is not None and self._mode is not None:
            post, forward = self._split(self._buffer)
            if prev in self._wanted:
                self._finish(prev, post)
            if t in self._wanted:
                self._forward = forward
        elif t in self._wanted and self._mode is not None:
            self._forward = list(self._buffer)  # step 0: everything since the start
        self._buffer = []
        self._after_loss = t
        if t in self._wanted:
            self._forward_step = t
        # keep the mode on through this step's backward and update if traced, or if the next is traced
        if t in self._wanted or (t + 1) in self._wanted:
            self._on()
        else:
            self._off()

    def stop(self) -> None:
        if self._after_loss is not None and self._after_loss in self._wanted and self._mode is not None:
            self._finish(self._after_loss, self._buffer)
        self._off()
        self._buffer = []

    def _split(self, ops: list[dict]) -> tuple[list[dict], list[dict]]:
        """ops after record(t-1) up to record(t): step t-1's backward and update, then step t's forward."""
        last = -1
        for i, op in enumerate(ops):
            if op["engine"] or not op["grad_enabled"] or op["writes_state"]:
                last = i
        return ops[: last + 1], ops[last + 1:]

    def _finish(self, step: int, post: list[dict]) -> None:
        forward = getattr(self, "_forward", []) if getattr(self, "_forward_step", None) == step else []
        engine_ran = any(op["engine"] for op in post)
        ops = [dict(op, phase="forward") for op in forward]
        backward_by_hand = not engine_ran
        first_engine = next((i for i, op in enumerate(post) if op["engine"]), -1)
        for i, op in enumerate(post):
            if op["engine"] or (i < first_engine and op["grad_enabled"] and not op["writes_state"]):
                phase = "backward"  # incl. the seed gradient (ones_like) made before the engine starts
            elif backward_by_hand:
                if op["writes_state"] or not op["grad_enabled"]:
                    backward_by_hand = False
                    phase = "update"
                else:
                    phase = "backward"
            else:
                phase = "update"
            ops.append(dict(op, phase=phase))
        self.traced[step] = [[o["name"], o["phase"], o["shapes"], o["dtypes"], o["outs"], o["ins"]] for o in ops
                             if "link" not in o]
        self.links[step] = [o["link"] for o in ops if "link" in o]

    def before(self, func: Any, args: tuple, kwargs: Mapping[str, Any]) -> list[str] | None:
        """Digests of the inputs, taken before an in-place op overwrites them; None: not recorded."""
        schema = func._schema
        if schema.name.split("::")[-1] in _SKIP_NAMES:
            return None
        # outputs that alias an input without writing it are views: no new values
        returns = schema.returns
        if not returns or all(r.alias_info is not None and not r.alias_info.is_write for r in returns):
            return None
        # views are left out of the trace, but their values are kept as links (value in -> value out),
        # so that a changed value seen through a view (w.t() of a changed w) is traced to its maker
        return [fingerprint(t)[0] for a in list(args) + list(kwargs.values()) for t in _tensors(a)]

    def link(self, func: Any, args: tuple, result: Any) -> None:
        returns = func._schema.returns
        if (len(returns) == 1 and returns[0].alias_info is not None and not returns[0].alias_info.is_write
                and args and isinstance(args[0], torch.Tensor) and isinstance(result, torch.Tensor)
                and args[0].is_floating_point()):
            a, b = fingerprint(args[0])[0], fingerprint(result)[0]
            if a != b:
                self._buffer.append(dict(link=[a, b], engine=False, grad_enabled=True, writes_state=False))

    def capture(self, func: Any, args: tuple, kwargs: Mapping[str, Any], result: Any, ins: list[str]) -> None:
        schema = func._schema
        name = schema.name.split("::")[-1]
        outputs = [t for t in _tensors(result if isinstance(result, (tuple, list)) else (result,))]
        if not outputs:
            return
        writes: list[torch.Tensor] = []
        flat_args = list(args) + [kwargs[a.name] for a in schema.arguments if a.name in kwargs]
        for arg, value in zip(schema.arguments, flat_args):
            if arg.alias_info is not None and arg.alias_info.is_write:
                writes += list(_tensors(value))
        grads = {p.grad.data_ptr() for p in self._params if isinstance(p, torch.Tensor) and p.grad is not None}
        writes_state = any(w.numel() and (w.data_ptr() in self._state_ptrs or w.data_ptr() in grads)
                           for w in writes)
        self._buffer.append(dict(
            name=f"aten::{name}" + ("" if schema.overload_name in ("", "default") else f".{schema.overload_name}"),
            engine=in_autograd_engine(),
            grad_enabled=torch.is_grad_enabled(),
            writes_state=writes_state,
            shapes=[list(t.shape) for t in outputs],
            dtypes=[str(t.dtype).replace("torch.", "") for t in outputs],
            outs=[fingerprint(t) for t in outputs],
            ins=ins,
        ))

    def result(self, meta: Mapping[str, Any]) -> dict:
        return {"schema": SCHEMA, **meta, "initial": self.initial,
                "steps": {str(k): v for k, v in sorted(self.traced.items())},
                "views": {str(k): v for k, v in sorted(self.links.items())}}


def _make_mode(recorder: Recorder):
    base = dispatch_mode_base()

    class _TraceMode(base):  # type: ignore[misc, valid-type]
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            ins = recorder.before(func, args, kwargs)
            result = func(*args, **kwargs)
            if ins is not None:
                recorder.capture(func, args, kwargs, result, ins)
            else:
                recorder.link(func, args, result)
            return result

    return _TraceMode()
