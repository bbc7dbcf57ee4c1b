"""Op traces: name the operation that changed.

A trace records, for chosen steps of a run, every aten operator the step executes, in order:
forward, backward (ops run by the autograd engine) and the update (optimizer kernels, foreach and
fused ones included), each with its phase, output shapes and dtypes, and a fingerprint of every
output: an exact digest of its bits (blake2b) plus float64 summaries (sum, sum of |x|, max |x|).
Ops that produce no new values (views, detach, empty allocations) are left out. The state the run
starts from (data, parameters) is fingerprinted too, so a changed initialisation or data draw is
named as such.

    reference.run(id, trace_steps=[0, 1, 2])   -> Trajectory.trace (a JSON-able dict)
    localize(baseline_trace, now_trace)          -> Finding; Finding.line() is the one greppable line:
        first differing op: aten::<name> at step <N> (<forward|backward|update>) ...
        first difference: initial state (<what>) ...
        no differing op in the traced steps

Every private torch API this relies on is named in this module only (PRIVATE_APIS), and
tests/test_trace.py fails loudly if a torch release moves one.

Phases. The harness calls record(t, loss) once per step, after the forward pass and before the
update. Ops after record(t) run inside the autograd engine are `backward`; the other ops after it
are `update` (where no engine ran, as in the hand-written backward passes of *.tensor, the ops
before the first in-place write into the start state are `backward`). Step t+1's forward starts
after the last op of step t that ran in the engine, with grad mode off, or wrote in place into the
start state or a gradient.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

# --- the private torch APIs, isolated here --------------------------------------------------------

PRIVATE_APIS = (
    "torch.utils._python_dispatch.TorchDispatchMode",
    "torch._C._current_autograd_node",
)


def _private(path: str) -> Any:
    """Resolve a dotted name, failing with one line that names it (a torch release moved it)."""
    module_name, _, attr = path.rpartition(".")
    import importlib

    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(
            f"op tracing needs the private torch API {path}, which torch {torch.__version__} does not have "
            f"({exc}); update reference/trace.py"
        ) from None


def _dispatch_mode_base() -> type:
    return _private("torch.utils._python_dispatch.TorchDispatchMode")


def _in_autograd_engine() -> bool:
    return _private("torch._C._current_autograd_node")() is not None


# --- policy (a proposal for specs/golden_policy.toml; read from here until the lead moves it) ----

# Steps a golden keeps the op trace of (specs/goldens/<variant>/<dtype>-seed<N>.trace.json). Steps
# 0-1 cover every op of the programs (forward, backward, the update, an optimizer's first and its
# steady-state branch); more steps only repeat the same ops.
GOLDEN_TRACE_STEPS = 2

# Rounding allowance when two traces cannot be bitwise equal (another device or kernel path): an
# op differs when its sum moves by more than rtol * sum|x| or its max |x| by more than rtol * max|x|.
# float32: a few hundred ulps of an accumulated dot product; float64 likewise.
ROUNDING_ALLOWANCE = {"float32": 1e-4, "float64": 1e-12}

PHASES = ("forward", "backward", "update")
SCHEMA = 1

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
    """Collects the ops of the traced steps of one run; the harness drives it (see harness.execute).

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
        # An optimizer's first step imports torch._dynamo; imported inside the dispatch mode, that
        # import fails half-way and every later import in the process fails too. Import it first.
        import torch._dynamo  # noqa: F401

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
            engine=_in_autograd_engine(),
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
    base = _dispatch_mode_base()

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


# --- reading and writing --------------------------------------------------------------------------

def dumps(trace: Mapping[str, Any]) -> str:
    """Compact JSON: one line per op, so a diff of two traces is reviewable."""
    head = {k: v for k, v in trace.items() if k not in ("initial", "steps", "views")}
    lines = ["{", f' "head": {json.dumps(head, sort_keys=True)},', ' "initial": [']
    lines += [f"  {json.dumps(e)}," for e in trace["initial"]]
    if trace["initial"]:
        lines[-1] = lines[-1].rstrip(",")
    lines += [" ],", ' "steps": {']
    steps = list(trace["steps"].items())
    for i, (step, ops) in enumerate(steps):
        lines.append(f'  "{step}": [')
        lines += [f"   {json.dumps(op)}," for op in ops]
        if ops:
            lines[-1] = lines[-1].rstrip(",")
        lines.append("  ]" + ("," if i < len(steps) - 1 else ""))
    lines += [" },", f' "views": {json.dumps(trace.get("views", {}))}', "}"]
    return "\n".join(lines) + "\n"


def loads(text: str) -> dict:
    d = json.loads(text)
    if "head" in d:
        d = {**d.pop("head"), **d}
    if d.get("schema") != SCHEMA or "steps" not in d or "initial" not in d:
        raise ValueError(f"not an op trace of schema {SCHEMA} (expected 'schema', 'initial', 'steps')")
    return d


# --- localization ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    kind: str  # "op" | "initial" | "none"
    text: str

    def line(self) -> str:
        return self.text

    @property
    def found(self) -> bool:
        return self.kind != "none"


def _rel(a: Any, b: Any, scale_a: Any, scale_b: Any) -> float:
    if a is None or b is None:
        return 0.0
    if isinstance(a, str) or isinstance(b, str):
        return 0.0 if a == b else math.inf
    scale = max(abs(scale_a or 0.0), abs(scale_b or 0.0))
    return 0.0 if a == b else (abs(a - b) / scale if scale else math.inf)


def _difference(a_out: Sequence, b_out: Sequence) -> float:
    """Relative difference of two output fingerprints (sum against sum|x|, and max |x|)."""
    return max(_rel(a_out[1], b_out[1], a_out[2], b_out[2]), _rel(a_out[3], b_out[3], a_out[3], b_out[3]))


def _amount(a_out: Sequence, b_out: Sequence) -> str:
    if a_out[1] is None:
        return "integer values differ"
    return (f"sum {b_out[1]:.9g} vs {a_out[1]:.9g}, max|x| {b_out[3]:.9g} vs {a_out[3]:.9g} "
            f"(relative {_difference(a_out, b_out):.2g})") if not isinstance(a_out[1], str) else \
        f"sum {b_out[1]} vs {a_out[1]}"


def _counterparts(a_ops: list, b_ops: list) -> dict[int, int]:
    """B index -> A index, aligned by op name and phase (insertions, drops and renames allowed)."""
    keys_a = [(op[0], op[1]) for op in a_ops]
    keys_b = [(op[0], op[1]) for op in b_ops]
    out: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(a=keys_a, b=keys_b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.update({j1 + k: i1 + k for k in range(j2 - j1)})
        elif tag == "replace":  # a renamed op: the baseline's op of the same output shapes in the block
            free = list(range(i1, i2))
            for j in range(j1, j2):
                same = [i for i in free if a_ops[i][2] == b_ops[j][2]]
                if same:
                    out[j] = same[-1]
                    free.remove(same[-1])
    return out


def _compare_initial(a: list, b: list, rtol: float | None) -> str | None:
    a_by = {e[0]: e for e in a}
    for e in b:
        name = e[0]
        other = a_by.get(name)
        if other is None:
            return f"{name} has no counterpart in the baseline"
        if other[1] != e[1] or other[2] != e[2]:
            return f"{name} is {e[1]} {e[2]}, the baseline's {other[1]} {other[2]}"
        if other[3] != e[3] and (rtol is None or _difference(other[3:], e[3:]) > rtol):
            return f"{name} {'x'.join(map(str, e[1]))} {e[2]} differs: {_amount(other[3:], e[3:])}"
    missing = sorted(set(a_by) - {e[0] for e in b})
    if missing:
        return f"{missing[0]} is missing (the baseline has it)"
    return None


def localize(baseline: Mapping[str, Any], now: Mapping[str, Any], *, rtol: float | None = None) -> Finding:
    """The first op of `now` whose output differs from `baseline`'s run of the same step.

    rtol None: bitwise. Ops are aligned by content: an output of `now` that the baseline computed
    anywhere in the same step is not a difference (an inserted, dropped, renamed or reordered op that
    computes the same values is not reported). With rtol (another device or kernel path), ops are
    aligned by name and phase and an output differs when it moves beyond the rounding allowance.
    """
    what = _compare_initial(baseline["initial"], now["initial"], rtol)
    if what is not None:
        return Finding("initial", f"first difference: initial state ({what})")
    steps = sorted(set(baseline["steps"]) & set(now["steps"]), key=int)
    if not steps:
        return Finding("none", "no differing op in the traced steps (no step traced in both)")
    for step in steps:
        a_ops, b_ops = baseline["steps"][step], now["steps"][step]
        links = now.get("views", {}).get(step, [])
        found = (_first_new_bitwise(a_ops, b_ops, step, links) if rtol is None else _first_beyond(a_ops, b_ops, step, rtol))
        if found is not None:
            return Finding("op", found)
        # An op the baseline ran and this run dropped matters only through later values, which the
        # loop above sees; a dropped intermediate whose values reach nothing (clamp's 0 scalar when
        # relu replaces it) is not a difference.
    return Finding("none", f"no differing op in the traced steps ({_ranges(steps)})")


def _ranges(steps: list[str]) -> str:
    n = sorted(int(s) for s in steps)
    return f"step {n[0]}" if len(n) == 1 else f"steps {n[0]}-{n[-1]}" if n == list(range(n[0], n[-1] + 1)) else \
        "steps " + ", ".join(map(str, n))


def _first_new_bitwise(a_ops: list, b_ops: list, step: str, links: Sequence = ()) -> str | None:
    """The first op aligned with a baseline op whose floating output the baseline never computed.

    Ops without a counterpart (inserted by a release, or by an injected change composed of ops) are
    passed over, their values counted as inputs of what follows; reported only if nothing aligned
    differs. Integer outputs (masks, indices, bit tricks) decide through the floats they change: a new
    mask from identical inputs whose consumer's floats are the first to differ is named as the origin."""
    known = {out[0] for op in a_ops for out in op[4]} | {d for op in a_ops for d in op[5]}
    pairs = _counterparts(a_ops, b_ops)
    inserted: list[tuple[int, list]] = []
    inserted_values: set[str] = set()
    # integer / bool values (masks) new in an op aligned with a baseline op, from identical inputs:
    # if the first differing floats come from them, that op is the origin (torch 2.14's clamp
    # backward: a `gt` mask where 2.13 ran `ge`, feeding the same `where`)
    new_masks: dict[str, tuple[int, list, int, int]] = {}  # value -> (op index, op, baseline op index, output)
    for j, op in enumerate(b_ops):
        i = pairs.get(j)
        if i is None:
            inserted_values |= {out[0] for out in op[4]}  # integers too: bit tricks feed later floats
            inserted_values |= {b for a, b in links if a in inserted_values}
        elif all(d in known for d in op[5]):
            new_masks.update({out[0]: (j, op, i, n) for n, out in enumerate(op[4])
                              if out[1] is None and out[0] not in known})
        new = [k for k, out in enumerate(op[4]) if out[0] not in known and out[1] is not None]
        if not new:
            continue
        if i is None:
            inserted.append((j, op))
            inserted_values |= {out[0] for out in op[4]}
            continue
        other, k = a_ops[i], new[0]
        origin = all(d in known or d in inserted_values for d in op[5])
        unknown = [d for d in op[5] if d not in known and d not in inserted_values]
        if unknown and all(d in new_masks for d in unknown) and not inserted:
            m, mask_op, mi, n = new_masks[unknown[0]]
            renamed = "" if a_ops[mi][0] == mask_op[0] else f", baseline ran {a_ops[mi][0]}"
            amount = _amount(other[4][k], op[4][k]) if len(other[4]) > k else "no such output in the baseline"
            return (f"first differing op: {mask_op[0]} at step {step} ({mask_op[1]}), op {m + 1} of {len(b_ops)}"
                    f"{renamed}; inputs identical (the origin); its {mask_op[3][n]} output differs, the first "
                    f"floats it changes are {op[0]}'s (op {j + 1}): {amount}")
        renamed = "" if other[0] == op[0] else f", baseline ran {other[0]}"
        after = ""
        if inserted:
            names = sorted({o[0] for _, o in inserted})
            after = f" after {len(inserted)} op(s) the baseline does not run ({', '.join(names[:3])})"
        source = ("inputs identical (the origin)" if origin and not after else
                  f"inputs identical{after} (the origin)" if origin else "inputs already different (a consumer)")
        amount = _amount(other[4][k], op[4][k]) if len(other[4]) > k else "no such output in the baseline"
        return f"first differing op: {op[0]} at step {step} ({op[1]}), op {j + 1} of {len(b_ops)}{renamed}; {source}; {amount}"
    if inserted:
        j, op = inserted[0]
        k = next(k for k, out in enumerate(op[4]) if out[0] not in known and out[1] is not None)
        origin = all(d in known for d in op[5])
        return (f"first differing op: {op[0]} at step {step} ({op[1]}), op {j + 1} of {len(b_ops)}, no counterpart in "
                f"the baseline; inputs {'identical (the origin)' if origin else 'already different (a consumer)'}; "
                f"output {k} {'x'.join(map(str, op[2][k]))} {op[3][k]} not computed by the baseline")
    return None


def _first_beyond(a_ops: list, b_ops: list, step: str, rtol: float) -> str | None:
    pairs = _counterparts(a_ops, b_ops)
    clean = True
    for j, op in enumerate(b_ops):
        i = pairs.get(j)
        if i is None:
            continue
        other = a_ops[i]
        if other[2] != op[2]:
            continue
        worst = max((_difference(x, y) for x, y in zip(other[4], op[4])), default=0.0)
        if worst > rtol:
            k = max(range(len(op[4])), key=lambda m: _difference(other[4][m], op[4][m]))
            source = "inputs within the allowance (the origin)" if clean else "inputs already beyond it (a consumer)"
            return (f"first differing op: {op[0]} at step {step} ({op[1]}), op {j + 1} of {len(b_ops)}, beyond the "
                    f"rounding allowance {rtol:g}; {source}; {_amount(other[4][k], op[4][k])}")
    return None


def summary(trace: Mapping[str, Any]) -> str:
    counts = {p: 0 for p in PHASES}
    for ops in trace["steps"].values():
        for op in ops:
            counts[op[1]] += 1
    return (f"{len(trace['initial'])} start tensors, steps {', '.join(trace['steps'])}: "
            + ", ".join(f"{n} {p}" for p, n in counts.items()) + " ops")


# --- locate, golden companions --------------------------------------------------------------------

def allowance(dtype: str, baseline: Mapping[str, Any], now: Mapping[str, Any]) -> float | None:
    """None (bitwise) when the two traces ran on the same kind of device, else the rounding allowance."""
    kind = lambda t: str(t.get("device", "cpu")).split(":")[0]  # noqa: E731
    return None if kind(baseline) == kind(now) else ROUNDING_ALLOWANCE[dtype]


def traced_run(variant_id: str, step: int, **run_args: Any) -> dict:
    """The op trace of `step` of a run (the run stops after it)."""
    from .harness import run

    run_args = {k: v for k, v in run_args.items() if k not in ("steps", "trace_steps")}
    return run(variant_id, steps=step + 1, trace_steps=[step], **run_args).trace


def golden_trace_path(key: Any):
    return key.path.with_name(key.path.name.removesuffix(".json") + ".trace.json")


def golden_trace_run_args(key: Any) -> dict:
    from .golden import CANONICAL_THREADS

    return dict(seed=key.seed, dtype=key.dtype, threads=CANONICAL_THREADS)


def write_golden_trace(key: Any) -> Any:
    """specs/goldens/<variant>/<dtype>-seed<N>.trace.json: the op trace of the golden's first
    GOLDEN_TRACE_STEPS steps, on the CPU at one thread (as the goldens)."""
    from .files import atomic_write
    from .harness import run

    steps = min(GOLDEN_TRACE_STEPS, key.steps)
    trace = run(key.variant, steps=steps, trace_steps=range(steps), **golden_trace_run_args(key)).trace
    path = golden_trace_path(key)
    text = dumps(trace)
    atomic_write(path, lambda f: f.write(text.encode()), overwrite=True)
    return path


def explain_golden_failure(key: Any, now_run_args: Mapping[str, Any]) -> str:
    """The line for a failing golden: rerun the golden's first steps with tracing, as the failing run
    was asked for (now_run_args: device, threads, ...), and localize against the kept trace."""
    path = golden_trace_path(key)
    if not path.is_file():
        return f"no op trace kept for {key} ({path.name} missing; write it with: python -m reference.trace write-goldens {key.variant})"
    try:
        baseline = loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"op trace {path} unreadable ({exc})"
    steps = len(baseline["steps"])
    args = {k: v for k, v in now_run_args.items() if k not in ("steps", "trace_steps", "seed", "dtype")}
    from .harness import run

    now = run(key.variant, seed=key.seed, dtype=key.dtype, steps=max(steps, 1), trace_steps=range(steps), **args).trace
    return localize(baseline, now, rtol=allowance(key.dtype, baseline, now)).line()


def main(argv: Sequence[str] | None = None) -> int:
    """python -m reference.trace write-goldens [VARIANT ...]: (re)write the goldens' companion traces."""
    import sys

    from .golden import all_keys

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "write-goldens":
        print("usage: python -m reference.trace write-goldens [VARIANT ...]", file=sys.stderr)
        return 2
    wanted = set(args[1:])
    keys = [k for k in all_keys() if not wanted or k.variant in wanted]
    if wanted - {k.variant for k in keys}:
        print(f"error: unknown variant(s) {sorted(wanted - {k.variant for k in keys})}", file=sys.stderr)
        return 2
    for key in keys:
        if key.path.is_file():
            path = write_golden_trace(key)
            print(f"{path}  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
