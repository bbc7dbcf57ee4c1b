"""Op traces on disk: compact JSON, one line per op, so that a diff of two traces is reviewable."""
from __future__ import annotations

import json
from typing import Any, Mapping

SCHEMA = 1


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
