"""The package's folders follow the data flow (specs -> plan -> run -> trajectory -> verdict / matrix ->
report), each layer importing only those below it, with no import cycle: checked over every import of
the package's own modules, those written inside functions included (they hide the real graph)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import reference

PACKAGE = Path(reference.__file__).parent
# bottom to top; a module may import its own layer and those before it
LAYERS = [
    ("base", ["catalogue", "errors", "files", "tolerances", "private", "facts", "injections", "poly_optimum",
              "variants", "mnist"]),
    ("trace", ["trace"]),
    ("harness", ["harness", "result_line"]),
    ("judge", ["judge"]),
    ("report", ["report"]),
    ("calibration", ["calibration"]),
    ("doors", ["cli", "testing", "bisect", "__main__", "__init__"]),
]
LAYER_OF = {top: i for i, (_, tops) in enumerate(LAYERS) for top in tops}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The package modules `path` imports (relative imports resolved, functions' imports included)."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, name: str, is_package: bool = False) -> set[str]:
    package = name if is_package else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("reference"):
                continue
            for alias in node.names:  # `from . import x` may name a module
                candidate = f"{base}.{alias.name}"
                out.add(candidate if _is_module(candidate) else base)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("reference")}
    return {m for m in out if m != name}


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return LAYER_OF[top]


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py")) if "_specs" not in p.parts}


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in graph() if len(m.split(".")) > 1 and m.split(".")[1] not in LAYER_OF)
    assert unplaced == [], f"place these in LAYERS: {unplaced}"


def test_no_module_imports_a_layer_above_its_own():
    upward = sorted(f"{src} -> {dst}" for src, dsts in graph().items() for dst in dsts
                    if layer(dst) > layer(src))
    assert upward == [], upward


def test_no_import_cycle():
    g = graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    assert cycles == [], cycles


@pytest.mark.parametrize("source, expected", [
    ("from ..judge import goldens\nfrom . import status", {"reference.judge.goldens", "reference.judge.status"}),
    ("def f():\n    from ..report.text import render\n", {"reference.report.text"}),
])
def test_the_import_reader_resolves_relative_and_function_level_imports(source, expected):
    assert imports_in(source, "reference.judge.verdict") == expected
