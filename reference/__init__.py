"""Reference implementations of the "Learning PyTorch with Examples" programs.

    reference.VARIANTS          every variant id -> its metadata (from specs/)
    reference.run(id, ...)      run one variant from a seeded start -> Trajectory
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalogue import Variant
    from .harness import Trajectory, run

    VARIANTS: dict[str, Variant]

__all__ = ["VARIANTS", "Trajectory", "Variant", "run"]


def __getattr__(name: str) -> Any:
    """Loaded on first use, so that importing a submodule (the pytest plugin in the xdist controller,
    which runs no test) does not import torch."""
    if name == "VARIANTS":
        from .catalogue import load_variants

        value: Any = load_variants()
    elif name == "Variant":
        from .catalogue import Variant as value
    elif name in ("Trajectory", "run"):
        from . import harness

        value = getattr(harness, name)
    else:
        raise AttributeError(f"module 'reference' has no attribute {name!r}")
    globals()[name] = value
    return value
