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
    """See Note [clamp gradient at 0] (specs/torch_behaviour.toml)."""
    return fact("clamp_min_grad_at_zero") == 1.0


def optimizer_default_mismatches() -> list[str]:
    """The optimiser defaults of specs/torch_behaviour.toml [optimizer_defaults] that the installed
    torch does not have, as 'SGD weight_decay: 1e-06, expected 0.0' lines (empty: all as stated)."""
    param = torch.nn.Parameter(torch.zeros(1))
    out = []
    for name, expected in load_toml("torch_behaviour.toml")["optimizer_defaults"].items():
        defaults = getattr(torch.optim, name)([param], lr=1e-3).defaults
        for key, want in expected.items():
            have = defaults.get(key)
            have = list(have) if isinstance(have, tuple) else have
            if have != want:
                out.append(f"{name} {key}: {have!r}, expected {want!r}")
    return out
