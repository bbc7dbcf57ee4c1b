"""torch.compile as an execution mode of a run (`reference.run(..., compile="inductor")`).

The variant files stay the tutorial: the harness compiles what they build, the way the PyTorch
docs teach it. Every nn.Module that make() returns is wrapped after placement,
`torch.compile(model, backend=...)`; every optimizer the variant creates during the run gets its
step compiled as in the recipe "Compiling the optimizer with torch.compile"
(`@torch.compile def fn(): opt.step()`). What dynamo could not compile in one piece is counted, not
hidden: the Trajectory records the graphs, graph breaks and recompiles of the run.

torch._dynamo's counters and compile callbacks are private API, reached through reference/private.py
(tests/test_private.py resolves each on the installed torch).
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

import torch

from ..catalogue import Variant, load_toml
from ..facts import rows_for
from ..private import cpp_compiler_problem, dynamo_callback_handler, dynamo_counters, dynamo_reset

BACKENDS = ("aot_eager", "inductor")


def spec() -> dict[str, Any]:
    return load_toml("compile.toml")


def compilable_variants() -> list[str]:
    """The variants whose make() builds an nn.Module (specs/compile.toml, checked by the tests)."""
    return list(spec()["variants"])


def expected_deviation(variant_id: str, dtype: str, backend: str, *, bitwise: bool) -> str | None:
    """The reason specs/compile.toml gives for a compiled run of the installed torch not matching
    eager: a [[deviation]] row of kind "policy" (outside the golden policy) always applies, one of
    kind "bitwise" (within the policy, not bitwise) only where bitwise equality is the claim. Rows are
    found by the one version rule (See Note [a torch the spec was not verified on])."""
    for row in rows_for(spec().get("deviation", [])):
        if (variant_id in row["variants"] and dtype in row["dtypes"] and backend in row["backends"]
                and (bitwise or row["kind"] == "policy")):
            return row["reason"]
    return None


def check_compile(variant: Variant, compile: Any) -> str | None:
    """compile= of a run, checked: None, or a backend this variant can be compiled with."""
    if compile is None:
        return None
    if not isinstance(compile, str) or compile not in BACKENDS:
        raise ValueError(f"compile={compile!r} is not a backend this harness runs. "
                         f"Valid choices: None, {', '.join(BACKENDS)}")
    if variant.id not in compilable_variants():
        raise ValueError(f"{variant.id} builds no nn.Module, so there is nothing to torch.compile. "
                         f"Valid variants for compile=: {', '.join(compilable_variants())}")
    reason = unavailable_reason(compile)
    if reason is not None:
        others = [b for b in BACKENDS if unavailable_reason(b) is None]
        raise ValueError(f"compile={compile!r} cannot run here: {reason}. Valid choices: None, {', '.join(others)}")
    return compile


@functools.cache  # a compiler probe per process is enough
def unavailable_reason(backend: str) -> str | None:
    """Why `backend` cannot compile here (inductor's CPU code needs a C++ compiler), or None."""
    return cpp_compiler_problem() if backend == "inductor" else None


# --- torch._dynamo's private state (reached through reference/private.py) ------------------------------

def dynamo_counts(compile_ids: list[str] | None) -> dict[str, int]:
    """graphs, graph_breaks and recompiles since the last torch._dynamo.reset() (recompiles left out
    where this torch reports no compile ids: compile_ids None).

    graphs: FX graphs dynamo handed to the backend (recompiles included); graph_breaks: the breaks
    dynamo recorded; recompiles: compiles of a frame that had been compiled before (compile id
    "frame/n" with n > 0), e.g. a new DynamicNet depth or a grad-mode change.
    """
    counters = dynamo_counters()
    counts = {"graphs": int(counters["stats"]["unique_graphs"]),
              "graph_breaks": int(sum(counters["graph_break"].values()))}
    if compile_ids is not None:
        counts["recompiles"] = sum(1 for cid in set(compile_ids) if _frame_compile_index(cid) > 0)
    return counts


def _frame_compile_index(compile_id: str) -> int:
    # "[1/0]" or "1/0" (frame 1, first compile); compiled-autograd ids start with "!"
    text = compile_id.strip("[]")
    _, sep, tail = text.partition("/")
    digits = tail.split("/")[0] if sep else ""
    return int(digits) if digits.isdigit() else 0


@contextlib.contextmanager
def _compile_ids() -> Iterator[list[str] | None]:
    """The compile ids of every dynamo compile while inside (torch._dynamo.callback_handler; None where
    this torch has no such handler)."""
    ids: list[str] = []

    def on_start(args: Any = None) -> None:
        # dynamo's own compiles; a lazily compiled backward reports its forward's id again
        if getattr(getattr(args, "callback_trigger", None), "name", "DYNAMO") == "DYNAMO":
            ids.append(str(getattr(args, "compile_id", "")))

    handler = dynamo_callback_handler()
    if handler is None:
        yield None
        return
    handler.register_start_callback(on_start)
    try:
        yield ids
    finally:
        handler.remove_start_callback(on_start)


# --- compiling a run ----------------------------------------------------------------------------------

def compile_module(module: torch.nn.Module, backend: str) -> torch.nn.Module:
    return torch.compile(module, backend=backend)


@contextlib.contextmanager
def _compiled_optimizer_steps(backend: str) -> Iterator[None]:
    """Every optimizer created inside gets the recipe's compiled step (its class is left alone)."""
    original_init = torch.optim.Optimizer.__init__

    def init(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        eager_step = self.step

        @torch.compile(backend=backend)
        def step(closure: Any = None) -> Any:
            return eager_step() if closure is None else eager_step(closure)

        self.step = step  # an instance attribute: optimizer.step() in the variant calls it

    torch.optim.Optimizer.__init__ = init
    try:
        yield
    finally:
        torch.optim.Optimizer.__init__ = original_init


@contextlib.contextmanager
def compiled_run(backend: str) -> Iterator[dict[str, int]]:
    """Around a run's train(): a fresh dynamo, compiled optimizer steps; yields the counts, filled
    in on exit."""
    dynamo_reset()  # counts and guards of this run only
    counts: dict[str, int] = {}
    with _compile_ids() as ids, _compiled_optimizer_steps(backend):
        try:
            yield counts
        finally:
            counts.update(dynamo_counts(ids))
    dynamo_reset()


def parameter_name(name: str) -> str:
    """named_parameters() of a compiled module, under the names of the module it wraps."""
    return name.replace("_orig_mod.", "")
