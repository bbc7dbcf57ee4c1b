"""`list`: the variants in lesson order, each with what it follows, shows, and its sources."""
from __future__ import annotations

import argparse
from typing import Any

from ..catalogue import cite, lesson_order, main_line


def cmd_list(args: argparse.Namespace) -> int:
    order = lesson_order()
    families = list(dict.fromkeys(v.family for v in order))
    print("Lesson order, the tutorial's main line of each family (side branches: see the after column):")
    for family in families:
        print(f"  {family}: {' -> '.join(main_line(family))}")
    print()
    after = {v.id: (v.after or "-") + (" (side branch)" if v.side_branch else "") for v in order}
    width = max(map(len, after))
    after_width = max(len("after"), *map(len, after.values()))
    print(f"{'variant':<{width}}  {'after':<{after_width}}  title")
    for v in order:
        print(f"{v.id:<{width}}  {after[v.id]:<{after_width}}  {v.title}")
        print(f"{'':<{width}}    {v.demonstrates}")
        print(f"{'':<{width}}    sources: {'; '.join(map(cite, v.sources))}")
    print("\nThe sources, with what each covers: specs/sources.toml")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="list the variants in lesson order: what each follows, shows, and its sources")
    p.set_defaults(func=cmd_list)
