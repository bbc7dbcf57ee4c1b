"""The variant catalogue, read from specs/: one TOML file per variant, the single source of truth
for hyperparameters, supported dtypes and the claims tests check."""
from __future__ import annotations

import difflib
import importlib
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Mapping


def specs_dir() -> Path:
    """specs/ beside the package in a checkout; the copy shipped as reference._specs otherwise."""
    in_checkout = Path(__file__).resolve().parent.parent / "specs"
    if (in_checkout / "variants").is_dir():
        return in_checkout
    shipped = Path(importlib.import_module("reference._specs").__path__[0])
    return shipped


def load_toml(name: str) -> dict[str, Any]:
    path = specs_dir() / name
    with path.open("rb") as f:
        return tomllib.load(f)


@dataclass(frozen=True)
class Variant:
    id: str
    lesson: int
    title: str
    demonstrates: str
    family: str
    module_name: str
    default_dtype: str
    dtypes: tuple[str, ...]
    devices: tuple[str, ...]
    sources: tuple[str, ...]
    hyperparameters: Mapping[str, Any]
    choices: Mapping[str, tuple[Any, ...]]
    claims: Mapping[str, Any]
    errata: tuple[Mapping[str, str], ...]
    spec_path: Path = field(compare=False)
    # The variant it follows in the tutorial (None: its family's first program); side_branch: not a
    # step on the tutorial's main line but an alternative to `after` (mlp.variable beside mlp.autograd)
    after: str | None = None
    side_branch: bool = False

    @property
    def steps(self) -> int:
        return int(self.hyperparameters["steps"])

    @property
    def uses_numpy(self) -> bool:
        return self.id.endswith(".numpy")

    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)


def _variant_from(path: Path) -> Variant:
    with path.open("rb") as f:
        raw = tomllib.load(f)
    vid = raw["id"]
    if path.stem != vid:
        raise ValueError(f"{path}: file name must match its id {vid!r}")
    hp = dict(raw["hyperparameters"])
    if "steps" not in hp:
        raise ValueError(f"{path}: [hyperparameters] must give steps")
    return Variant(
        id=vid,
        lesson=int(raw["lesson"]),
        title=raw["title"],
        demonstrates=raw["demonstrates"],
        family=vid.split(".")[0],
        module_name=raw.get("module", "reference.variants." + vid.replace(".", "_")),
        default_dtype=raw["default_dtype"],
        dtypes=tuple(raw["dtypes"]),
        devices=tuple(raw.get("devices", ["cpu", "cuda"])),
        sources=tuple(raw["sources"]),
        hyperparameters=MappingProxyType(hp),
        choices=MappingProxyType({k: tuple(v) for k, v in raw.get("choices", {}).items()}),
        claims=MappingProxyType(dict(raw.get("claims", {}))),
        errata=tuple(MappingProxyType(e) for e in raw.get("errata", [])),
        spec_path=path,
        after=raw.get("after"),
        side_branch=bool(raw.get("side_branch", False)),
    )


@cache
def load_variants() -> Mapping[str, Variant]:
    variants = [_variant_from(p) for p in (specs_dir() / "variants").glob("*.toml")]
    family_order = {"mlp": 0, "poly": 1}
    variants.sort(key=lambda v: (family_order.get(v.family, len(family_order)), v.family, v.lesson))
    by_id = {v.id: v for v in variants}
    for v in variants:
        if v.after is not None and (v.after not in by_id or by_id[v.after].family != v.family):
            raise ValueError(f"{v.spec_path}: after = {v.after!r} names no {v.family} variant. "
                             f"Valid choices: {', '.join(w for w in by_id if by_id[w].family == v.family)}")
        if v.side_branch and v.after is None:
            raise ValueError(f"{v.spec_path}: a side branch needs `after`, the variant it branches from")
    return MappingProxyType(by_id)


def lesson_order() -> list[Variant]:
    """Every variant in the tutorial's order: each family's main line, first program first, and each
    side branch right after the variant it branches from (depth first along `after`)."""
    variants = load_variants()
    followers: dict[str | None, list[Variant]] = {}
    for v in variants.values():
        followers.setdefault(v.after, []).append(v)
    order: list[Variant] = []

    def visit(v: Variant) -> None:
        order.append(v)
        # side branches first, so that one is printed next to its predecessor, not after the main line
        for w in sorted(followers.get(v.id, []), key=lambda w: not w.side_branch):
            visit(w)

    for root in followers.get(None, []):
        visit(root)
    return order


def main_line(family: str) -> list[str]:
    """The family's lesson order without its side branches: first program, then each `after` it."""
    variants = load_variants()
    roots = [v.id for v in variants.values() if v.family == family and v.after is None]
    line = roots[:1]
    while line:
        nxt = [v.id for v in variants.values() if v.after == line[-1] and not v.side_branch]
        if not nxt:
            break
        line.append(nxt[0])
    return line


def lookup(variant_id: str) -> Variant:
    variants = load_variants()
    if not isinstance(variant_id, str) or variant_id not in variants:
        close = difflib.get_close_matches(str(variant_id), list(variants), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown variant {variant_id!r}.{hint} Valid choices: {', '.join(variants)}"
        )
    return variants[variant_id]


@cache
def load_sources() -> Mapping[str, Mapping[str, Any]]:
    """specs/sources.toml: the documents the specs cite, by id."""
    return MappingProxyType(load_toml("sources.toml")["source"])


def source_id(entry: str) -> str:
    """A `sources` entry is an id, optionally followed by a note: "blog-poly (prints lr 1e-6)"."""
    return entry.split(" (", 1)[0].strip()


def cite(entry: str) -> str:
    """A sources entry with its document's title and date, for people: unknown ids say so."""
    doc = load_sources().get(source_id(entry))
    if doc is None:
        return f"{entry} [not in specs/sources.toml]"
    note = entry[len(source_id(entry)):].strip()
    date = "" if doc["date"] == "undated" else f", {doc['date']}"
    return f"{source_id(entry)} \"{doc['title']}\"{date}" + (f" {note}" if note else "")
