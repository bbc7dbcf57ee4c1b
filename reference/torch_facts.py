"""Version-dependent torch behaviour the specification states (specs/torch_behaviour.toml)."""
from __future__ import annotations

import torch
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .catalogue import load_toml


def installed_torch() -> Version:
    return Version(Version(torch.__version__).base_version)


def fact(name: str) -> float:
    """The value specs/torch_behaviour.toml gives `name` for the installed torch."""
    rows = load_toml("torch_behaviour.toml")[name]
    version = installed_torch()
    for row in rows:
        if version in SpecifierSet(row["torch"]):
            return row["value"]
    raise LookupError(
        f"specs/torch_behaviour.toml states no {name} for torch {version}: measure it and add a row "
        f"(rows cover {', '.join(r['torch'] for r in rows)})"
    )


def clamp_passes_gradient_at_zero() -> bool:
    return fact("clamp_min_grad_at_zero") == 1.0
