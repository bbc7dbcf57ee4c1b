"""What decides a run's bits beyond the versions: the CPU and its instruction sets, the BLAS and
oneDNN builds and the kernel paths they chose, and the environment variables that steer them.

Two hosts with the same torch, NumPy and Python can still give different bits: MKL dispatches on the
CPU it finds (another AVX-512 host rewrote 18 of 20 mlp goldens; MKL_ENABLE_INSTRUCTIONS=AVX2 gave
the first loss back). Trajectories and goldens record describe(), so that such a difference comes
with its cause: explain_difference(a, b) names the keys by which two records differ.

    describe(device=None)           -> dict (JSON-ready); CUDA details when device is a CUDA device
    explain_difference(a, b, names) -> list of one-line differences; [] when nothing recorded differs
"""
from __future__ import annotations

import os
import platform
import re
from functools import cache
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..private import cuda_driver_version, mkl_dispatch

# ISA flags (as /proc/cpuinfo spells them) that decide which kernels MKL, oneDNN, OpenBLAS and
# ATen's own vectorised code take
ISA_FLAGS = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni",
    "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "avx512ifma", "avx512vbmi", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",
    "asimd", "asimdhp", "sve", "sve2", "bf16", "i8mm",  # aarch64
)
# environment variables that change the kernels or their arithmetic (names, or prefixes ending in _)
ENV_VARS = (
    "ATEN_CPU_CAPABILITY", "MKL_", "DNNL_", "ONEDNN_", "OPENBLAS_", "OMP_NUM_THREADS", "KMP_", "NPY_",
    "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "CUBLAS_WORKSPACE_CONFIG",
)
NOT_RECORDED = "not recorded"


def _cpuinfo() -> tuple[str, list[str]]:
    """(model name, the ISA_FLAGS it has) from /proc/cpuinfo; platform's answer elsewhere."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and not model:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or "unknown", [f for f in ISA_FLAGS if f in flags]


def _torch_config() -> dict[str, str]:
    """torch's MKL and oneDNN versions and BLAS, as torch.__config__.show() states them."""
    text = torch.__config__.show()
    out = {}
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)[^\n]*?Build (\d+)", text)
    onednn = re.search(r"(?:MKL-DNN|oneDNN) (v[\d.]+)", text)
    blas = re.search(r"BLAS_INFO=([^,\s]+)", text)
    out["torch_mkl"] = f"{mkl.group(1)} build {mkl.group(2)}" if mkl else ("none" if not torch.backends.mkl.is_available() else "unknown")
    out["torch_onednn"] = onednn.group(1) if onednn else ("none" if not torch.backends.mkldnn.is_available() else "unknown")
    out["torch_blas"] = blas.group(1) if blas else "unknown"
    return out


def _numpy_blas() -> list[str]:
    """NumPy's BLAS: which library, its version and the kernel architecture it chose (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["unknown (threadpoolctl not installed)"]
    out = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        parts = [lib.get("internal_api"), lib.get("version"), lib.get("architecture"), lib.get("threading_layer")]
        out.append(" ".join(str(p) for p in parts if p) + f" ({lib.get('prefix')})")
    return sorted(out)


@cache
def _static() -> dict[str, Any]:
    """What does not change while a process runs."""
    model, flags = _cpuinfo()
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_model": model,
        "cpu_flags": flags,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **_torch_config(),
        **mkl_dispatch(),
        "numpy_blas": _numpy_blas(),
    }


# matched by a prefix above but deciding nothing: threadpoolctl and scikit-learn set it when imported,
# so whether a record carries it would depend on the import order
IGNORED_ENV_VARS = ("KMP_DUPLICATE_LIB_OK",)


def _environment_variables() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items())
            if any(k == name or (name.endswith("_") and k.startswith(name)) for name in ENV_VARS)
            and k not in IGNORED_ENV_VARS}


def _cuda(device: torch.device) -> dict[str, Any]:
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    out: dict[str, Any] = {
        "cuda_device": props.name,
        "cuda_capability": f"{props.major}.{props.minor}",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    out["cuda_driver"] = cuda_driver_version()
    return out


def describe(device: Any = None) -> dict[str, Any]:
    """What decides the bits of a run on `device` here (JSON-ready; the CUDA keys only for CUDA)."""
    out = dict(_static())
    out["cpu_flags"] = list(out["cpu_flags"])
    out["numpy_blas"] = list(out["numpy_blas"])
    out["env"] = _environment_variables()
    if device is not None and torch.device(device).type == "cuda":
        out.update(_cuda(torch.device(device)))
    return out


# What decides a run's bits, as far as measured (docs/expectations.md): two runs whose fingerprints
# are equal compute the same bits, every variant and dtype (benchmarks/fingerprint_factors.py).
# The Python version and the machine's name do not; everything else here may.
FINGERPRINT_KEYS = ("torch", "numpy", "machine", "cpu_model", "cpu_flags", "cpu_capability", "torch_mkl",
                    "torch_onednn", "torch_blas", "mkl_cpu_dispatch", "mkl_intel_cpu", "numpy_blas", "env",
                    "threads", "cuda_device", "cuda_capability", "cuda", "cudnn", "cuda_driver")


def fingerprint(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keys of an environment record (describe() plus the thread count) that decide the bits;
    {} for a record that is missing."""
    if not record:
        return {}
    return {k: record[k] for k in FINGERPRINT_KEYS if k in record}


def _flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in record.items():
        if key == "env" and isinstance(value, Mapping):
            out.update({f"env {k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def explain_difference(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None,
                       names: Sequence[str] = ("golden", "now")) -> list[str]:
    """One line per recorded key by which environments `a` and `b` differ, e.g.
    "cpu_model: golden Intel Xeon Platinum 8480+, now AMD EPYC 9654", and one line naming the keys
    that one side did not record (goldens and results written before this module record versions
    only). An environment variable set on one side only reads "unset" on the other."""
    first, second = names
    if not a and not b:
        return [f"environment: {NOT_RECORDED} for {first} or {second}"]
    if not a or not b:
        return [f"environment: {NOT_RECORDED} for {first if not a else second}"]
    fa, fb = _flatten(a), _flatten(b)
    lines, missing = [], {first: [], second: []}
    keys = sorted(set(fa) | set(fb), key=lambda k: (k.startswith("env "), k))
    for key in keys:
        va, vb = fa.get(key), fb.get(key)
        if key in fa and key in fb and va == vb:
            continue
        if key.startswith("env "):
            if "env" not in (a if key not in fa else b):  # that side recorded no variables at all
                missing[first if key not in fa else second].append(key)
                continue
            va_text = _text(va) if key in fa else "unset"
            vb_text = _text(vb) if key in fb else "unset"
        elif key not in fa or key not in fb:
            missing[first if key not in fa else second].append(key)
            continue
        elif isinstance(va, list) and isinstance(vb, list) and (set(map(str, va)) ^ set(map(str, vb))):
            only_a = [x for x in va if x not in vb]
            only_b = [x for x in vb if x not in va]
            va_text = "has " + ", ".join(map(str, only_a)) if only_a else "lacks " + ", ".join(map(str, only_b))
            vb_text = "has " + ", ".join(map(str, only_b)) if only_b else "lacks " + ", ".join(map(str, only_a))
        else:
            va_text, vb_text = _text(va), _text(vb)
        lines.append(f"{key}: {first} {va_text}, {second} {vb_text}")
    for side, keys_missing in missing.items():
        if keys_missing:
            lines.append(f"{NOT_RECORDED} for {side}: {', '.join(keys_missing)}")
    return lines


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
