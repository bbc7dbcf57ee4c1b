"""Op traces, localization: the first op of one trace whose output differs from another's.

    localize(baseline_trace, now_trace)          -> Finding; Finding.line() is the one greppable line:
        first differing op: aten::<name> at step <N> (<forward|backward|update>) ...
        first difference: initial state (<what>) ...
        no differing op in the traced steps

How two traces are compared (compare_traces picks it):
  bitwise   the same environment (the traces' environment fingerprints equal): the first op whose
            output the baseline never computed is the origin;
  rounding  the same kind of device, another environment (another CPU kernel path, another torch):
            a bitwise difference within the rounding allowance is another kernel path's rounding,
            stated as such ("within rounding"), and the origin is the first op beyond it;
  device    another kind of device: ops aligned by name and phase, compared against the allowance.
The allowance: specs/tolerances.toml [trace_rounding_allowance].

Note [another kernel path is not a change]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Under ATEN_CPU_CAPABILITY=default torch.randn draws other float32 bits for the same seed (24 796 of
64 000 elements of a 64x1000 draw, by at most 1.9e-6), and MKL's other instruction sets round a
matmul otherwise: a run on such a path differs from a trace kept elsewhere in its initial state and
its first ops, whatever else changed. Reporting the first bitwise difference would name "initial
state" for every real change there; what a user needs is the first op beyond what rounding
explains, with the rounding-sized differences before it stated as such.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..tolerances import tolerance
from .record import PHASES


def rounding_allowance(dtype: str) -> float:
    """An op differs across devices when its sum moves by more than rtol * sum|x| or its max |x| by
    more than rtol * max|x| (specs/tolerances.toml [trace_rounding_allowance])."""
    return tolerance("trace_rounding_allowance", dtype).rtol


def allowance(dtype: str, baseline: Mapping[str, Any], now: Mapping[str, Any]) -> float | None:
    """None (bitwise) when the two traces ran on the same kind of device, else the rounding allowance."""
    kind = lambda t: str(t.get("device", "cpu")).split(":")[0]  # noqa: E731
    return None if kind(baseline) == kind(now) else rounding_allowance(dtype)


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


def _compare_initial(a: list, b: list, rtol: float | None, rounding: float | None = None,
                     benign: list[str] | None = None, equivalent: set[str] | None = None) -> str | None:
    a_by = {e[0]: e for e in a}
    for e in b:
        name = e[0]
        other = a_by.get(name)
        if other is None:
            return f"{name} has no counterpart in the baseline"
        if other[1] != e[1] or other[2] != e[2]:
            return f"{name} is {e[1]} {e[2]}, the baseline's {other[1]} {other[2]}"
        if other[3] == e[3]:
            continue
        if rounding is not None and e[4] is not None and _difference(other[3:], e[3:]) <= rounding:
            benign.append(f"initial state {name}")
            equivalent.add(e[3])
            continue
        if rtol is None or _difference(other[3:], e[3:]) > rtol:
            return f"{name} {'x'.join(map(str, e[1]))} {e[2]} differs: {_amount(other[3:], e[3:])}"
    missing = sorted(set(a_by) - {e[0] for e in b})
    if missing:
        return f"{missing[0]} is missing (the baseline has it)"
    return None


def same_environment(baseline: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """Both traces name their environment fingerprint, and the two are equal."""
    a, b = baseline.get("environment"), now.get("environment")
    return bool(a) and a == b


def compare_traces(baseline: Mapping[str, Any], now: Mapping[str, Any], dtype: str) -> Finding:
    """localize() in the mode the two traces call for (bitwise, rounding or device; see above)."""
    rtol = allowance(dtype, baseline, now)
    if rtol is not None:
        return localize(baseline, now, rtol=rtol)
    if same_environment(baseline, now):
        return localize(baseline, now)
    # a start drawn otherwise differs by float32 roundings (every torch program draws in float32, the
    # tutorial's dtype), whatever the run's dtype; a start drawn alike, by the run dtype's own
    same_start = [e[3] for e in baseline["initial"]] == [e[3] for e in now["initial"]]
    return localize(baseline, now, rounding=rounding_allowance(dtype if same_start else "float32"))


def localize(baseline: Mapping[str, Any], now: Mapping[str, Any], *, rtol: float | None = None,
             rounding: float | None = None) -> Finding:
    """The first op of `now` whose output differs from `baseline`'s run of the same step.

    rtol None: bitwise. Ops are aligned by content: an output of `now` that the baseline computed
    anywhere in the same step is not a difference (an inserted, dropped, renamed or reordered op that
    computes the same values is not reported). rounding (another kernel path on the same kind of
    device): a difference within it is taken as rounding, said so, and passed over
    (See Note [another kernel path is not a change]). With rtol (another device), ops are aligned
    by name and phase and an output differs when it moves beyond the rounding allowance.
    """
    benign: list[str] = []
    equivalent: set[str] = set()
    what = _compare_initial(baseline["initial"], now["initial"], rtol, rounding, benign, equivalent)
    if what is not None:
        return Finding("initial", f"first difference: initial state ({what})")
    steps = sorted(set(baseline["steps"]) & set(now["steps"]), key=int)
    if not steps:
        return Finding("none", "no differing op in the traced steps (no step traced in both)")
    for step in steps:
        a_ops, b_ops = baseline["steps"][step], now["steps"][step]
        links = now.get("views", {}).get(step, [])
        if rtol is None:
            found = _first_new_bitwise(a_ops, b_ops, step, links, rounding, equivalent, benign)
        else:
            found = _first_beyond(a_ops, b_ops, step, rtol)
        if found is not None:
            return Finding("op", found + _within(benign, "; before it, within rounding (another kernel path): "))
        # An op the baseline ran and this run dropped matters only through later values, which the
        # loop above sees; a dropped intermediate whose values reach nothing (clamp's 0 scalar when
        # relu replaces it) is not a difference.
    if benign:
        return Finding("none", f"no op beyond the rounding allowance in the traced steps ({_ranges(steps)})"
                       + _within(benign, "; within it (another kernel path): "))
    return Finding("none", f"no differing op in the traced steps ({_ranges(steps)})")


def _within(benign: list[str], lead: str) -> str:
    if not benign:
        return ""
    shown = ", ".join(benign[:4]) + (f" and {len(benign) - 4} more" if len(benign) > 4 else "")
    return lead + shown


def _ranges(steps: list[str]) -> str:
    n = sorted(int(s) for s in steps)
    return f"step {n[0]}" if len(n) == 1 else f"steps {n[0]}-{n[-1]}" if n == list(range(n[0], n[-1] + 1)) else \
        "steps " + ", ".join(map(str, n))


# Over 60 lines: one pass over the ops carries the known values, the inserted ops and the new masks
# that every case below reads; split, each part would take and return all three.
def _first_new_bitwise(a_ops: list, b_ops: list, step: str, links: Sequence = (), rounding: float | None = None,
                       equivalent: set[str] | None = None, benign: list[str] | None = None) -> str | None:
    """The first op aligned with a baseline op whose floating output the baseline never computed.

    Ops without a counterpart (inserted by a release, or by an injected change composed of ops) are
    passed over, their values counted as inputs of what follows; reported only if nothing aligned
    differs. Integer outputs (masks, indices, bit tricks) decide through the floats they change: a new
    mask from identical inputs whose consumer's floats are the first to differ is named as the origin.
    rounding: an aligned op whose new outputs are all within it of the baseline's is another kernel
    path's rounding: its values count as the baseline's (`equivalent`), its name goes to `benign`."""
    equivalent = set() if equivalent is None else equivalent
    benign = [] if benign is None else benign
    baseline_values = {out[0] for op in a_ops for out in op[4]} | {d for op in a_ops for d in op[5]}
    equivalent |= {b for a, b in links if a in equivalent}  # views of values within rounding
    known = baseline_values | equivalent
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
        if (rounding is not None and i is not None and len(a_ops[i][4]) == len(op[4])
                and all(_difference(a_ops[i][4][k], op[4][k]) <= rounding for k in new)):
            new_values = {op[4][k][0] for k in new}
            new_values |= {b for a, b in links if a in new_values}
            known |= new_values
            equivalent |= new_values
            benign.append(f"{op[0]} at step {step}")
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
        same = "identical" if not any(d in equivalent for d in op[5]) else "within rounding of the baseline's"
        source = (f"inputs {same} (the origin)" if origin and not after else
                  f"inputs {same}{after} (the origin)" if origin else "inputs already different (a consumer)")
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
