"""Reference implementations of the "Learning PyTorch with Examples" programs.

    reference.VARIANTS          every variant id -> its metadata (from specs/)
    reference.run(id, ...)      run one variant from a seeded start -> Trajectory
"""
from .catalogue import Variant, load_variants
from .harness import Trajectory, run

VARIANTS = load_variants()

__all__ = ["VARIANTS", "Trajectory", "Variant", "run"]
