"""Skips the tests share where the installed torch makes a test pointless, each saying why."""
from __future__ import annotations

import pytest
import torch

from reference.facts import clamp_passes_gradient_at_zero


def skip_unless_clamp_passes_gradient_at_zero(consequence: str) -> None:
    """For tests that inject relu's gradient at 0 into clamp(min=0): on torch >= 2.14 clamp already
    has it (See Note [clamp gradient at 0]). `consequence`: what that leaves the test, for the reason."""
    if not clamp_passes_gradient_at_zero():
        pytest.skip(f"torch {torch.__version__}'s clamp(min=0) already has relu's gradient at 0: injecting it "
                    f"changes nothing {consequence}")
