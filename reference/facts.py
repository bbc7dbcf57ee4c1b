"""Version-keyed facts of the specification, and the one rule by which a torch version finds its row.

Note [a torch the spec was not verified on]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
specs/torch_versions.toml lists the releases this specification was verified on. Every version-keyed
row (specs/torch_behaviour.toml, specs/compile.toml) is looked up by one rule:
  - a verified release (any build of it: 2.14.1+cu130 is 2.14.1) takes the row whose range holds it;
  - any other torch (newer, older, a pre-release, a nightly such as 2.16.0.dev20270115, a local
    build of an unverified version) is outside the verified range: the row of the newest verified
    release below it applies, and a fact that can be measured on the spot is measured and compared
    with that row. Equal: it holds, with a note. Different: FactChanged, named as a change since
    that release ("clamp(min=0) gradient at 0: 1.0 here, 0.0 on 2.14.1"): a real change the user
    must hear about. Never a "no row" failure: a spec that has not heard of a version is not a
    regression.
`check --propose-rows FILE` writes the rows measured here, for a maintainer to review.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Mapping, Sequence

import torch
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .catalogue import load_toml


class FactChanged(AssertionError):
    """A fact measured on a torch outside the verified range differs from the newest verified release's."""


def installed_torch() -> str:
    return torch.__version__


def parse(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        # a vendor build with a version string packaging cannot read: its leading release numbers
        head = version.split("+")[0]
        digits = []
        for part in head.split("."):
            number = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
            if not number:
                break
            digits.append(number)
            if not part.isdigit():
                break
        return Version(".".join(digits) or "0") if digits else Version("0")


def release(version: str) -> Version:
    """The release a build belongs to: 2.14.1+cu130 -> 2.14.1; 2.16.0.dev20270115 stays a dev release."""
    v = parse(version)
    return Version(v.public) if v.local else v


@cache
def verified_versions() -> tuple[Version, ...]:
    return tuple(sorted(Version(v) for v in load_toml("torch_versions.toml")["verified"]))


def is_verified(version: str | None = None) -> bool:
    return release(version or installed_torch()) in verified_versions()


def verified_range_text() -> str:
    versions = verified_versions()
    return f"{versions[0]} .. {versions[-1]}"


def outside_note(version: str | None = None) -> str | None:
    """'torch 2.15.0 is outside the versions this specification was verified on (2.1.2 .. 2.14.1)', or
    None for a verified release."""
    version = version or installed_torch()
    if is_verified(version):
        return None
    return (f"torch {version} is outside the versions this specification was verified on "
            f"({verified_range_text()}): version-keyed facts are measured here and compared with the newest "
            "verified release below it")


def reference_release(version: str | None = None) -> Version | None:
    """The release whose rows a version takes: itself if verified, else the newest verified release
    below it (None below the oldest)."""
    v = release(version or installed_torch())
    if v in verified_versions():
        return v
    below = [r for r in verified_versions() if r < v]
    return below[-1] if below else None


def rows_for(rows: Sequence[Mapping[str, Any]], version: str | None = None) -> list[Mapping[str, Any]]:
    """The rows (each with a `torch` range) that apply to `version`: the one rule of the Note."""
    ref = reference_release(version)
    if ref is None:
        return []
    return [row for row in rows if ref in SpecifierSet(row["torch"])]


# --- facts that can be measured on the spot ----------------------------------------------------------

def _clamp_min_grad_at_zero() -> float:
    x = torch.zeros(1, requires_grad=True)
    x.clamp(min=0).backward()
    return float(x.grad.item())


MEASURE: dict[str, Callable[[], Any]] = {"clamp_min_grad_at_zero": _clamp_min_grad_at_zero}
DESCRIBE = {"clamp_min_grad_at_zero": "clamp(min=0) gradient at 0"}


@dataclass(frozen=True)
class Fact:
    name: str
    value: Any  # what holds for the installed torch
    stated: Any  # what the spec's row says (for the reference release); None: no row
    reference: Version | None  # the release whose row applies
    verified: bool  # the installed torch is a verified release

    @property
    def changed(self) -> bool:
        return self.stated is not None and self.value != self.stated

    def note(self) -> str:
        what = DESCRIBE.get(self.name, self.name)
        if self.verified:
            return f"{what}: {self.value} (specs/torch_behaviour.toml, torch {self.reference})"
        if self.stated is None:
            return f"{what}: {self.value} measured here; no verified release below torch {installed_torch()} to compare with"
        if self.changed:
            return f"{what}: {self.value} here, {self.stated} on {self.reference} (changed since the newest verified release)"
        return f"{what}: {self.value} measured here, as on {self.reference}"


def _table(name: str) -> list[Mapping[str, Any]]:
    return list(load_toml("torch_behaviour.toml")[name])


def lookup(name: str, version: str | None = None) -> Fact:
    """The fact `name` for the installed torch (or `version`, whose numerics are the installed
    torch's: a measured fact is always measured here)."""
    version = version or installed_torch()
    rows = rows_for(_table(name), version)
    stated = rows[0]["value"] if rows else None
    verified = is_verified(version)
    if verified and stated is not None:
        return Fact(name, stated, stated, reference_release(version), True)
    measure = MEASURE.get(name)
    if measure is None:
        raise FactChanged(f"{name}: torch {version} is outside the verified range and this fact cannot be "
                          "measured here; verify it and add a row to specs/torch_behaviour.toml")
    return Fact(name, measure(), stated, reference_release(version), False)


def fact(name: str) -> Any:
    """The value of `name` that holds for the installed torch; FactChanged when a torch outside the
    verified range measures otherwise than the newest verified release below it."""
    found = lookup(name)
    if found.changed:
        raise FactChanged(found.note())
    return found.value


def clamp_passes_gradient_at_zero() -> bool:
    """See Note [clamp gradient at 0] (specs/torch_behaviour.toml)."""
    return lookup("clamp_min_grad_at_zero").value == 1.0


def version_keyed_facts() -> list[Fact]:
    """Every fact of specs/torch_behaviour.toml that is keyed by torch version, for this torch."""
    data = load_toml("torch_behaviour.toml")
    return [lookup(name) for name, rows in data.items()
            if isinstance(rows, list) and rows and isinstance(rows[0], Mapping) and "torch" in rows[0]]


def proposed_rows(facts: Sequence[Fact], version: str | None = None) -> str:
    """TOML rows stating the measured facts for this torch's release, for a maintainer to review."""
    v = release(version or installed_torch())
    lines = [f"# measured on torch {version or installed_torch()} by `check --propose-rows`: review, then move each",
             "# row into specs/torch_behaviour.toml (narrowing the range of the row it follows) and add",
             f'# "{v}" to specs/torch_versions.toml `verified` once the gate passes on it', ""]
    for f in facts:
        lines += [f"[[{f.name}]]", f'torch = "=={v}"', f"value = {f.value!r}",
                  f"# {f.note()}", ""]
    return "\n".join(lines)


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
