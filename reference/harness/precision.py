"""float32 matmul precision on CUDA: switching TF32 off, reading the state back, measuring it.

Note [TF32]
~~~~~~~~~~~
TF32 (Ampere and later) rounds float32 matmul inputs to a 10-bit mantissa: the change that stopped
this tutorial's MLP converging on CUDA 11 (pytorch/pytorch#47844). A float32 matmul then errs by
~1e-4 .. 1e-3 relative instead of IEEE float32's ~1e-7, so CUDA runs switch it off and check,
read back and measured, that it is off; the CPU has no TF32 path.

Three things here:

  ieee_float32(device)   CUDA runs: cuBLAS float32 matmul in IEEE float32 for the run, restored
                         after. torch >= 2.9 has per-backend `fp32_precision` settings beside the
                         legacy ones; a legacy read raises when the two disagree (a "mix of legacy
                         and new APIs" error), and a legacy write rewrites the new one. So nothing is
                         read that can raise unguarded, nothing is written when the state already
                         says IEEE, and both are put back as found.
  tf32_state(device)     what torch says now: True if a float32 matmul on `device` may use TF32.
  matmul_probe(device)   what the device does: a float32 matmul and F.linear of fixed operands
                         against float64, as the largest error relative to the largest result.
                         So TF32 left on (a flag that did not take, NVIDIA_TF32_OVERRIDE, a torch
                         that ignores it) is seen: See Note [TF32].

emulated_tf32() rounds the inputs of every float32 matmul (forward and backward) to TF32 on any
device: how the CPU measures what TF32 would do to a trajectory, and tests the probe.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

def has_fp32_precision_api() -> bool:
    """torch >= 2.9: per-backend `fp32_precision` settings (torch.backends.cuda.matmul.fp32_precision)."""
    try:
        torch.backends.cuda.matmul.fp32_precision
    except (AttributeError, AssertionError, RuntimeError):  # torch < 2.9 raises AssertionError("Unknown attribute")
        return False
    return True


def _read(fn: Any) -> Any:
    try:
        return fn()
    except RuntimeError:  # torch's "mix of legacy and new APIs" check
        return None


@contextlib.contextmanager
def ieee_float32(device: torch.device) -> Iterator[None]:
    """cuBLAS float32 matmul without TF32 on a CUDA device for the block; nothing on other devices.

    Only the matmul setting is touched: no variant uses cuDNN, and on torch >= 2.9 a written cuDNN
    setting can never be unwritten (it stops following its parent, torch.backends.cudnn.fp32_precision).
    Nothing is written when the state already says IEEE; otherwise it is restored, also on an exception.
    """
    if device.type != "cuda":
        yield
        return
    if not has_fp32_precision_api():
        # torch < 2.9: one legacy setting. set_float32_matmul_precision keeps "medium" as it was
        # (allow_tf32 = True would turn it into "high").
        saved = torch.get_float32_matmul_precision()
        try:
            torch.set_float32_matmul_precision("highest")
            yield
        finally:
            torch.set_float32_matmul_precision(saved)
        return
    # torch >= 2.9: cuBLAS reads matmul.fp32_precision and checks it against the legacy matmul
    # precision (allowTF32CuBLAS raises when they disagree), so both must say IEEE during the run.
    matmul = torch.backends.cuda.matmul
    mm = matmul.fp32_precision
    legacy_tf32 = _read(lambda: matmul.allow_tf32)  # None: the two disagree
    if mm != "tf32" and legacy_tf32 is False:
        yield
        return
    legacy = _read(torch.get_float32_matmul_precision)
    mkldnn = _read(lambda: torch.backends.mkldnn.matmul.fp32_precision)
    try:
        matmul.allow_tf32 = False  # legacy precision "highest" and matmul.fp32_precision "ieee"
        yield
    finally:
        _restore_matmul(mm, legacy_tf32, legacy, mkldnn)


@contextlib.contextmanager
def tf32_matmul(device: torch.device) -> Iterator[None]:
    """The opposite of ieee_float32, for tests and experiments: TF32 matmul on for the block, in a
    state both of torch's checks accept (legacy "high" and fp32_precision "tf32"); restored after."""
    if device.type != "cuda":
        yield
        return
    if not has_fp32_precision_api():
        saved = torch.get_float32_matmul_precision()
        try:
            torch.set_float32_matmul_precision("high")
            yield
        finally:
            torch.set_float32_matmul_precision(saved)
        return
    matmul = torch.backends.cuda.matmul
    saved_state = (matmul.fp32_precision, _read(lambda: matmul.allow_tf32), _read(torch.get_float32_matmul_precision),
                   _read(lambda: torch.backends.mkldnn.matmul.fp32_precision))
    try:
        matmul.allow_tf32 = True
        yield
    finally:
        _restore_matmul(*saved_state)


def _restore_matmul(mm: str, legacy_tf32: bool | None, legacy: str | None, mkldnn: str | None) -> None:
    """Put back the legacy matmul precision and matmul.fp32_precision as ieee_float32 found them."""
    # The legacy precision, also where torch refused to read it: "highest" iff allow_tf32 read False,
    # or, where that disagreed with fp32_precision, iff fp32_precision was not "tf32". Else "high"
    # or "medium"; where that read raised, it disagreed with the oneDNN matmul setting, which tells.
    if not (legacy_tf32 if legacy_tf32 is not None else mm != "tf32"):
        legacy = "highest"
    elif legacy is None:
        legacy = "high" if mkldnn == "bf16" else "medium"
    if legacy == "medium":  # the one setter of "medium" also writes the oneDNN matmul setting
        torch.set_float32_matmul_precision("medium")
        _write_back(torch.backends.mkldnn.matmul, mkldnn)
    else:
        torch.backends.cuda.matmul.allow_tf32 = legacy == "high"
    _write_back(torch.backends.cuda.matmul, mm)


def _write_back(owner: Any, value: str | None) -> None:
    """owner.fp32_precision = value, as "none" (inherit from the parent setting) when that reads the same.

    torch reads back a setting's effective value, so a setting written to its parent's value and one
    inheriting it look the same; only a later write to the parent tells them apart (the inheriting
    one follows). Such a setting comes back inheriting: the one state this cannot restore exactly.
    """
    if value is None:
        return
    owner.fp32_precision = "none"
    if owner.fp32_precision != value:
        owner.fp32_precision = value


def tf32_state(device: torch.device) -> bool | None:
    """Read back from torch: may a float32 matmul on `device` use TF32 now?

    None for devices without TF32 (the CPU: its float32 kernels have no TF32 path here).
    """
    if device.type != "cuda":
        return None
    if has_fp32_precision_api():
        return torch.backends.cuda.matmul.fp32_precision == "tf32"
    return torch.backends.cuda.matmul.allow_tf32


PROBE_SHAPE = (64, 256, 64)  # (rows, inner, columns): the inner size of mlp.*'s hidden layers


def matmul_probe(device: torch.device) -> dict[str, float]:
    """Max |float32 - float64| / max |float64| of `a @ b` and `F.linear(a, b.T)` on `device`.

    Operands: normal draws from a private generator (the global RNG is not touched), so every run
    measures the same numbers. The float64 reference is computed on the CPU.
    """
    rows, inner, cols = PROBE_SHAPE
    gen = torch.Generator().manual_seed(20201118)
    a64 = torch.randn(rows, inner, generator=gen, dtype=torch.float64)
    b64 = torch.randn(inner, cols, generator=gen, dtype=torch.float64)
    a, b = a64.float().to(device), b64.float().to(device)
    reference = a.double().cpu() @ b.double().cpu()  # the float32 operands, multiplied exactly enough
    scale = reference.abs().max()
    out = {}
    for name, fn in (("matmul", lambda: a @ b), ("linear", lambda: torch.nn.functional.linear(a, b.t()))):
        got = fn().double().cpu()
        out[name] = float((got - reference).abs().max() / scale)
    return out


def tf32_round(t: torch.Tensor) -> torch.Tensor:
    """float32 values rounded to TF32's 10-bit mantissa (round to nearest, ties away)."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


@contextlib.contextmanager
def emulated_tf32() -> Iterator[None]:
    """Every float32 mm / addmm / bmm / baddbmm in the block (autograd's backward ones included)
    gets its matrix operands rounded to TF32 first, on whatever device: a CPU model of TF32."""
    from ..private import dispatch_mode_base

    TorchDispatchMode = dispatch_mode_base()

    aten = torch.ops.aten
    operands = {aten.mm.default: (0, 1), aten.bmm.default: (0, 1),
                aten.addmm.default: (1, 2), aten.baddbmm.default: (1, 2)}

    class _TF32(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            which = operands.get(func)
            if which is not None:
                args = list(args)
                for i in which:
                    if isinstance(args[i], torch.Tensor) and args[i].dtype == torch.float32:
                        args[i] = tf32_round(args[i])
            return func(*args, **(kwargs or {}))

    with _TF32():
        yield
