"""Op traces: name the operation that changed.

    record.py    the Recorder the harness drives (every aten op of chosen steps, fingerprinted)
    io.py        dumps / loads (one line per op)
    localize.py  localize(baseline, now) -> Finding: the first op whose output differs

Imports nothing above it: re-running a run with tracing is the judge layer's (reference/judge/locate.py).
"""
from __future__ import annotations

from .io import SCHEMA, dumps, loads
from .localize import Finding, allowance, compare_traces, localize, rounding_allowance, same_environment, summary
from .record import PHASES, Recorder, fingerprint, initial_state

__all__ = ["PHASES", "SCHEMA", "Finding", "Recorder", "allowance", "compare_traces", "dumps", "fingerprint",
           "initial_state", "loads", "localize", "rounding_allowance", "same_environment", "summary"]
