"""The suite's Hypothesis profiles, extending Hypothesis's own: `dev` (the default), `ci` (Hypothesis's
built-in ci profile: derandomized, no database, print_blob; chosen when CI is set), `thorough` (500
examples); and torch's global generator registered with Hypothesis, seeded and restored like `random`."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, register_random, settings
from hypothesis.errors import InvalidArgument

EXAMPLES = 25  # per property in the gate: the properties run in seconds (benchmarks/bench_gate.py)


class _TorchGlobalRandom:
    """Lets Hypothesis seed and restore torch's global generator like it does `random`'s."""

    def seed(self, seed: int) -> None:
        import torch

        torch.manual_seed(seed)

    def getstate(self):
        import torch

        return torch.get_rng_state()

    def setstate(self, state) -> None:
        import torch

        torch.set_rng_state(state)


_torch_random = _TorchGlobalRandom()  # register_random holds a weak reference: keep this one alive


def register_profiles() -> None:
    slow_ok = [HealthCheck.too_slow]
    settings.register_profile("dev", max_examples=EXAMPLES, deadline=None, suppress_health_check=slow_ok)
    try:
        builtin_ci = settings.get_profile("ci")
    except InvalidArgument:  # a Hypothesis older than its built-in ci profile
        builtin_ci = settings(derandomize=True, database=None, print_blob=True, deadline=None)
    settings.register_profile("ci", parent=builtin_ci, max_examples=EXAMPLES, suppress_health_check=slow_ok)
    settings.register_profile("thorough", max_examples=500, phases=list(Phase), deadline=None,
                              suppress_health_check=slow_ok)
    settings.load_profile("ci" if os.environ.get("CI", "").lower() not in ("", "0", "false") else "dev")


def register_torch_random() -> None:
    register_random(_torch_random)
