"""Every private torch API the package uses, in one module: the one place to mend when a torch
release moves one (tests/test_private.py resolves each on the installed torch and fails naming it).

    dispatch_mode_base()        torch.utils._python_dispatch.TorchDispatchMode (op tracing, TF32 emulation)
    outside_dispatch_modes()    torch.utils._python_dispatch._disable_current_modes (bookkeeping ops untraced)
    in_autograd_engine()        torch._C._current_autograd_node() is not None (a backward op)
    dynamo_counters()           torch._dynamo.utils.counters (graphs, graph breaks of a compiled run)
    dynamo_callback_handler()   torch._dynamo.callback_handler (compile ids: recompiles; None where a torch
                                has none, as 2.1: recompiles then go uncounted)
    dynamo_reset()              torch._dynamo.reset()
    preload_dynamo()            import torch._dynamo before anything needs it (see its docstring)
    cpp_compiler_problem()      torch._inductor.cpp_builder.get_cpp_compiler (can inductor compile here?)
    cuda_driver_version()       torch._C._cuda_getDriverVersion()
    mkl_dispatch()              MKL's own CPU-dispatch symbols inside libtorch_cpu (not torch's API at all)
"""
from __future__ import annotations

import ctypes
import importlib
import os
from typing import Any

import torch

PRIVATE_APIS = (
    "torch.utils._python_dispatch.TorchDispatchMode",
    "torch.utils._python_dispatch._disable_current_modes",
    "torch._C._current_autograd_node",
    "torch._dynamo.utils.counters",
    "torch._dynamo.reset",
)
# Used where present; where not, what it serves is said to be unavailable (tests/test_private.py).
OPTIONAL_APIS = (
    "torch._dynamo.callback_handler",
)


def resolve(path: str) -> Any:
    """A dotted name, or RuntimeError in one line naming it (a torch release moved it)."""
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(
            f"the private torch API {path} is not in torch {torch.__version__} ({exc}); "
            "update reference/private.py"
        ) from None


def dispatch_mode_base() -> type:
    return resolve("torch.utils._python_dispatch.TorchDispatchMode")


def outside_dispatch_modes() -> Any:
    """A context in which no dispatch mode sees the ops run: the harness's own bookkeeping (state
    fingerprints) stays out of the op trace of the program it watches."""
    return resolve("torch.utils._python_dispatch._disable_current_modes")()


def in_autograd_engine() -> bool:
    return resolve("torch._C._current_autograd_node")() is not None


def dynamo_counters() -> Any:
    return resolve("torch._dynamo.utils.counters")


def dynamo_callback_handler() -> Any | None:
    try:
        return resolve("torch._dynamo.callback_handler")
    except RuntimeError:
        return None


def dynamo_reset() -> None:
    resolve("torch._dynamo.reset")()


def preload_dynamo() -> None:
    """Import torch._dynamo now. An optimizer's first step imports it; imported inside a dispatch mode
    (op tracing) that import fails half-way and every later import in the process fails too; imported
    by an in-process pytester session first, it would be dropped with that session's sys.modules
    snapshot, and torch cannot register its operator libraries a second time."""
    importlib.import_module("torch._dynamo")


def cpp_compiler_problem() -> str | None:
    """Why inductor cannot compile C++ here, or None (torch >= 2.5 has the probe; before it, a
    compiler on PATH is taken as enough)."""
    import shutil

    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:
        if shutil.which("g++") is None and shutil.which("c++") is None:
            return "inductor needs a C++ compiler on the CPU and none (g++, c++) is on PATH"
        return None
    try:
        get_cpp_compiler()
    except Exception as exc:  # InvalidCxxCompiler and kin
        return f"inductor needs a C++ compiler on the CPU: {type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


def cuda_driver_version() -> Any:
    try:
        return torch._C._cuda_getDriverVersion()  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return "unknown"


def mkl_dispatch() -> dict[str, int]:
    """The code path torch's bundled MKL chose (its internal CPU-dispatch code, and whether it takes
    the CPU for an Intel one): on two hosts of one torch build a different code means other kernels."""
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    if not os.path.exists(path):
        return {}
    try:
        lib = ctypes.CDLL(path)
        out = {}
        for key, symbol in (("mkl_cpu_dispatch", "mkl_serv_cpu_detect"), ("mkl_intel_cpu", "mkl_serv_intel_cpu_true")):
            fn = getattr(lib, symbol)  # no-argument int functions in every MKL torch has bundled
            fn.restype, fn.argtypes = ctypes.c_int, []
            out[key] = int(fn())
        return out
    except (OSError, AttributeError):
        return {}
