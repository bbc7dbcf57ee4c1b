"""How many lines `diff` shows between each variant file and its predecessor's (`after` in its spec):
the size of each lesson as a reader sees it, comment lines counted apart.

    python benchmarks/lesson_diffs.py

A comment that is true in both files is kept word for word, so the changed comment lines should be
the lesson's own. Prints a table; asserts nothing.
"""
from __future__ import annotations

import difflib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference.catalogue import lesson_order  # noqa: E402


def source(module_name: str) -> list[str]:
    spec = importlib.util.find_spec(module_name)
    return Path(spec.origin).read_text(encoding="utf-8").splitlines()


def changed(a: list[str], b: list[str]) -> tuple[int, int]:
    """(changed lines, of which comment lines), as `diff a b | grep -c '^[<>]'` counts them."""
    lines = [line for line in difflib.unified_diff(a, b, lineterm="", n=0)
             if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return len(lines), sum(line[1:].lstrip().startswith("#") for line in lines)


def main() -> int:
    variants = {v.id: v for v in lesson_order()}
    print(f"{'after':<22}{'variant':<24}{'lines':>6}{'comments':>10}")
    for v in variants.values():
        if v.after is None:
            continue
        before = variants[v.after]
        if before.module_name == v.module_name:
            print(f"{v.after:<22}{v.id:<24}{'(same file)':>16}")
            continue
        lines, comments = changed(source(before.module_name), source(v.module_name))
        side = "  (side branch)" if v.side_branch else ""
        print(f"{v.after:<22}{v.id:<24}{lines:>6}{comments:>10}{side}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
