"""How many threads the gate's runs use (no torch import: the xdist controller checks it too)."""
from __future__ import annotations

import os

CANONICAL_THREADS = 1  # the goldens are recorded at one thread
THREADS_ENV = "TES_THREADS"


def gate_threads() -> int:
    """Threads for the gate's runs: the goldens' 1, unless TES_THREADS names another count (the
    stability runs of benchmarks/stability.py: the policy must hold at any thread count)."""
    raw = os.environ.get(THREADS_ENV, "")
    if raw == "":
        return CANONICAL_THREADS
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{THREADS_ENV}={raw!r} is not a thread count. Valid choices: an integer >= 1, or unset (1)")
    return int(raw)
