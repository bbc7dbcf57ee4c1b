"""Runs reference.harness.precision.ieee_float32 from many starting states of torch's precision settings,
each in its own forked process (the settings are process-global and partly hidden), and prints one
JSON line per scenario for tests/test_tf32.py:

  before / inside / after   every setting as torch reads it back (or the error a read raises),
  followup / control        the same after one more user setting, with and without the switch in
                            between: equal only if the switch also restored what cannot be read.

    python tests/tf32_switch_scenarios.py
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from reference.harness import precision  # noqa: E402

warnings.simplefilter("ignore")  # torch warns about the legacy API on every use
B = torch.backends
CUDA = torch.device("cuda")  # the switch only needs the name: the flags are settable without a GPU

NEW = {  # name: (owner path, values)
    "generic": ("", ("tf32", "ieee", "none")),
    "cudnn": ("cudnn", ("tf32", "ieee", "none")),
    "cuda.matmul": ("cuda.matmul", ("tf32", "ieee", "none")),
    "cudnn.conv": ("cudnn.conv", ("tf32", "ieee", "none")),
    "cudnn.rnn": ("cudnn.rnn", ("tf32", "ieee")),
    "mkldnn.matmul": ("mkldnn.matmul", ("bf16", "ieee")),
}


def _owner(path: str):
    obj = B
    for part in filter(None, path.split(".")):
        obj = getattr(obj, part)
    return obj


def has_new_api() -> bool:
    return precision.has_fp32_precision_api()


def actions() -> list[tuple[str, object]]:
    acts: list[tuple[str, object]] = [("legacy.matmul", v) for v in (True, False)]
    acts += [("legacy.cudnn", v) for v in (True, False)]
    acts += [("float32_matmul_precision", v) for v in ("highest", "high", "medium")]
    if has_new_api():
        acts += [(name, v) for name, (_, values) in NEW.items() for v in values]
    return acts


def apply(action: tuple[str, object]) -> None:
    name, value = action
    if name == "legacy.matmul":
        B.cuda.matmul.allow_tf32 = value
    elif name == "legacy.cudnn":
        B.cudnn.allow_tf32 = value
    elif name == "float32_matmul_precision":
        torch.set_float32_matmul_precision(value)
    else:
        _owner(NEW[name][0]).fp32_precision = value


def _read(fn):
    try:
        return fn()
    except Exception as exc:  # a read that raises is part of the state
        return f"raises {type(exc).__name__}"


def snapshot() -> dict:
    snap = {
        "legacy.matmul": _read(lambda: B.cuda.matmul.allow_tf32),
        "legacy.cudnn": _read(lambda: B.cudnn.allow_tf32),
        "float32_matmul_precision": _read(torch.get_float32_matmul_precision),
    }
    if has_new_api():
        for name, (path, _) in {**NEW, "mkldnn": ("mkldnn", ()), "cudnn.rnn": ("cudnn.rnn", ())}.items():
            snap[name] = _read(lambda: _owner(path).fp32_precision)
    return snap


def in_child(fn) -> dict:
    """fn() in a forked child; its JSON-able result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = json.dumps(fn())
        except BaseException as exc:  # report, never fall back into the parent's code
            out = json.dumps({"child error": repr(exc)})
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def _legacy_only() -> None:
    """The torch < 2.9 code path, on this torch (in a forked child only)."""
    precision.has_fp32_precision_api = lambda: False


def scenario(start: list, followup: tuple, raise_inside: bool, legacy: bool = False) -> dict:
    def with_switch():
        if legacy:
            _legacy_only()
        for a in start:
            apply(a)
        before = snapshot()
        inside = {}
        try:
            with precision.ieee_float32(CUDA):
                inside = snapshot()
                inside["tf32_state"] = precision.tf32_state(CUDA)
                if raise_inside:
                    raise KeyboardInterrupt  # the harshest way out of a run
        except KeyboardInterrupt:
            pass
        except Exception as exc:  # the switch itself failed: a finding, reported in its row
            inside = {"switch raised": f"{type(exc).__name__}: {str(exc)[:200]}"}
        after = snapshot()
        with precision.tf32_matmul(CUDA):  # the experiments' opposite switch
            on = snapshot()
            on["tf32_state"] = precision.tf32_state(CUDA)
        after_on = snapshot()
        apply(followup)
        return {"before": before, "inside": inside, "after": after, "on": on, "after_on": after_on,
                "after_followup": snapshot()}

    def control():
        if legacy:
            _legacy_only()
        for a in start:
            apply(a)
        apply(followup)
        return snapshot()

    out = in_child(with_switch)
    out["control"] = in_child(control)
    out.update(start=start, followup_action=followup, raised=raise_inside, mode="legacy" if legacy else "new")
    return out


def scenarios(legacy: bool) -> list[tuple[list, tuple, bool]]:
    acts = actions() if not legacy else [a for a in actions() if a[0] in ("legacy.matmul", "float32_matmul_precision")]
    starts: list[list] = [[]] + [[a] for a in acts]
    # pairs mixing the legacy and the new API (the combinations that make legacy reads raise)
    old = [a for a in acts if a[0].startswith("legacy") or a[0] == "float32_matmul_precision"]
    new = [a for a in acts if a not in old]
    starts += [[a, b] for a, b in itertools.product(old[::2], new[::3])]
    starts += [[b, a] for a, b in itertools.product(old[1::2], new[1::3])]
    followups = ([("generic", "tf32"), ("cudnn", "ieee"), ("cudnn", "tf32"), ("legacy.matmul", True)] if new
                 else [("legacy.matmul", True), ("float32_matmul_precision", "medium")])
    return [(s, followups[i % len(followups)], i % 3 == 0) for i, s in enumerate(starts)]


def main() -> int:
    """Every scenario with this torch's code path; then, where this torch has the new settings,
    the legacy (torch < 2.9) code path from legacy-only starts."""
    torch.set_num_threads(1)
    modes = [False] + ([True] if has_new_api() else [])
    for legacy in modes:
        for start, followup, raise_inside in scenarios(legacy):
            print(json.dumps(scenario(start, followup, raise_inside, legacy)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
