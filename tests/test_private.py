"""Every private torch API the package uses is reached through reference/private.py: each resolves on
the installed torch (a release that moves one fails here, naming it, not somewhere deep in a run)."""
from __future__ import annotations

import pytest
import torch

from reference import private


@pytest.mark.parametrize("path", private.PRIVATE_APIS)
def test_each_private_torch_api_resolves_on_this_torch(path):
    assert private.resolve(path) is not None


def test_an_optional_private_api_resolves_or_its_use_says_it_is_unavailable(monkeypatch):
    from reference.harness import compiling

    def moved(path):
        raise RuntimeError(f"the private torch API {path} is not in this torch")

    assert private.OPTIONAL_APIS
    monkeypatch.setattr(private, "resolve", moved)
    assert private.dynamo_callback_handler() is None
    monkeypatch.setattr(compiling, "dynamo_callback_handler", private.dynamo_callback_handler)
    with compiling._compile_ids() as ids:
        assert ids is None
    monkeypatch.setattr(compiling, "dynamo_counters", lambda: {"stats": {"unique_graphs": 2}, "graph_break": {"x": 1}})
    assert compiling.dynamo_counts(None) == {"graphs": 2, "graph_breaks": 1}  # recompiles: not counted, not 0


def test_a_moved_private_api_fails_with_one_line_naming_it():
    with pytest.raises(RuntimeError, match=r"private torch API torch\._C\._no_such_thing is not in torch .*"
                                           r"update reference/private\.py"):
        private.resolve("torch._C._no_such_thing")


def test_the_autograd_engine_is_seen_in_backward_and_not_in_forward():
    """What op tracing labels phases by (reference/trace/record.py)."""
    seen = []

    class Probe(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            seen.append(("forward", private.in_autograd_engine()))
            return x * 2

        @staticmethod
        def backward(ctx, g):
            seen.append(("backward", private.in_autograd_engine()))
            return g * 2

    Probe.apply(torch.ones(2, requires_grad=True)).sum().backward()
    assert seen == [("forward", False), ("backward", True)]


def _private_torch_uses(tree) -> list[int]:
    """Lines that import a private torch module or read a private torch attribute (torch._x, torch.a._b)."""
    import ast

    lines = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Attribute):
            parts, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                names = [".".join([value.id, *reversed(parts)])]
        if any(n.startswith("torch.") and any(p.startswith("_") and not p.startswith("__") for p in n.split(".")[1:])
               for n in names):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_no_module_outside_private_uses_a_private_torch_api():
    """The claim of reference/private.py: the one place to mend when a release moves one."""
    import ast
    from pathlib import Path

    root = Path(private.__file__).parent
    offenders = {str(p.relative_to(root)): _private_torch_uses(ast.parse(p.read_text()))
                 for p in sorted(root.rglob("*.py")) if p.name != "private.py"}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert _private_torch_uses(ast.parse("import torch._dynamo\nx = torch._C._foo\ny = torch.nn.Linear")) == [1, 2]
