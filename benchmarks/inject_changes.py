"""Does the golden gate catch tutorial-relevant changes in torch? Inject them and see.

    python benchmarks/inject_changes.py [--only NAME ...]

Each injection monkeypatches torch in this process the way a torch release, a kernel or a
container could change it (optimiser constants, loss reduction, activation gradient at 0, layer
init, matmul precision), runs every mlp/poly variant in both dtypes exactly as the golden tests do,
and judges the runs with the golden policy. Prints, per injection and dtype, which variants the
gate flags and which it does not. Nothing is written.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reference  # noqa: E402
from reference import golden, policy  # noqa: E402
from reference.golden import GoldenKey  # noqa: E402


@contextlib.contextmanager
def patched(obj, name: str, value) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def with_default(cls, **changes) -> Callable:
    original = cls.__init__

    @functools.wraps(original)
    def init(self, params, *args, **kwargs):
        for key, value in changes.items():
            kwargs[key] = value
        original(self, params, *args, **kwargs)

    return patched(cls, "__init__", init)


def relu_style_clamp():
    """clamp(min=0) whose gradient at exactly 0 is 0 (as torch.relu's), instead of 1."""
    original = torch.Tensor.clamp

    def clamp(self, min=None, max=None):
        if min == 0 and max is None:
            return torch.relu(self)
        return original(self, min=min, max=max)

    return patched(torch.Tensor, "clamp", clamp)


def mse_mean_times_n():
    """MSELoss(reduction='sum') computed as mean x N: the same value in exact arithmetic."""
    original = torch.nn.functional.mse_loss

    def mse_loss(input, target, *args, reduction="mean", **kwargs):
        if reduction == "sum":
            return original(input, target, reduction="mean") * input.numel()
        return original(input, target, *args, reduction=reduction, **kwargs)

    return patched(torch.nn.functional, "mse_loss", mse_loss)


def mse_mean():
    original = torch.nn.MSELoss.__init__

    def init(self, *args, **kwargs):
        kwargs["reduction"] = "mean"
        original(self, *args, **kwargs)

    return patched(torch.nn.MSELoss, "__init__", init)


def kaiming_a0():
    original = torch.nn.init.kaiming_uniform_

    def kaiming_uniform_(tensor, a=0, *args, **kwargs):
        return original(tensor, 0.0, *args, **kwargs)

    return patched(torch.nn.init, "kaiming_uniform_", kaiming_uniform_)


def tf32_like_matmul():
    """float32 matmul inputs rounded to TF32's 10-bit mantissa, as a GPU with TF32 on would."""
    def round_tf32(t: torch.Tensor) -> torch.Tensor:
        if t.dtype != torch.float32:
            return t
        bits = t.detach().contiguous().view(torch.int32)
        rounded = ((bits + 0x1000) & ~0x1FFF).view(torch.float32)
        return t + (rounded - t.detach())  # rounded value, gradient of the identity

    originals = {name: getattr(torch.Tensor, name) for name in ("mm", "__matmul__")}
    linear = torch.nn.functional.linear

    stack = contextlib.ExitStack()
    stack.enter_context(patched(torch.Tensor, "mm", lambda a, b: originals["mm"](round_tf32(a), round_tf32(b))))
    stack.enter_context(patched(torch.nn.functional, "linear",
                                lambda x, w, b=None: linear(round_tf32(x), round_tf32(w), b)))
    return stack


INJECTIONS: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "adam eps 1e-8 -> 1e-6": lambda: with_default(torch.optim.Adam, eps=1e-6),
    "adam betas (0.9, 0.999) -> (0.9, 0.99)": lambda: with_default(torch.optim.Adam, betas=(0.9, 0.99)),
    "sgd dampening 0 -> 0.01": lambda: with_default(torch.optim.SGD, dampening=0.01),
    "sgd weight_decay 0 -> 1e-6": lambda: with_default(torch.optim.SGD, weight_decay=1e-6),
    "rmsprop alpha 0.99 -> 0.9": lambda: with_default(torch.optim.RMSprop, alpha=0.9),
    "mse 'sum' -> 'mean'": mse_mean,
    "mse 'sum' computed as mean x N": mse_mean_times_n,
    "clamp(min=0) grad at 0: 1 -> 0 (relu's)": relu_style_clamp,
    "Linear init kaiming a=sqrt(5) -> 0": kaiming_a0,
    "float32 matmul at TF32 precision": tf32_like_matmul,
}


def judge(variant_id: str, dtype: str, runs: dict, seed: int = 0) -> policy.Verdict:
    key = GoldenKey(variant_id, dtype, seed)
    gold = golden.read(key)["losses"]
    gold64 = golden.read(GoldenKey(variant_id, "float64", seed))["losses"] if dtype != "float64" else None
    now = reference.run(variant_id, seed=seed, dtype=dtype, steps=key.steps, threads=1)
    runs[variant_id] = now.losses
    return policy.compare(variant_id, dtype, now.losses, gold, golden64=gold64)


def broken_equivalences(runs: dict) -> list[str]:
    """The [equivalent_to] claims of specs/variants (tests/test_contract.py) that the runs break."""
    broken = []
    for vid, variant in reference.VARIANTS.items():
        for other, tol in variant.equivalent_to.items():
            a, b = np.asarray(runs[vid]), np.asarray(runs[other])
            if len(a) == len(b) and not np.allclose(a, b, rtol=tol["rtol"], atol=tol["atol"]):
                broken.append(f"{vid}=={other}")
            elif tol["rtol"] == tol["atol"] == 0 and not np.array_equal(a, b):
                broken.append(f"{vid}=={other}")
    return broken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="injection names (substring match)")
    args = parser.parse_args()
    ids = [v for v in reference.VARIANTS if reference.VARIANTS[v].family in ("mlp", "poly")]
    for name, make in INJECTIONS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        print(f"\n== {name}")
        with make():
            for dtype in ("float64", "float32"):
                runs: dict = {}
                verdicts = [judge(v, dtype, runs) for v in ids]
                caught = [v.variant for v in verdicts if not v.ok]
                unchanged = [v.variant for v in verdicts if v.status == policy.EXACT]
                missed = [v.variant for v in verdicts if v.status == policy.CLOSE]
                print(f"  {dtype}: caught {len(caught)}: {', '.join(caught) or '-'}")
                if missed:
                    print(f"  {dtype}: changed but within policy: " + "; ".join(
                        f"{v.variant} (max rel {v.max_rel_error:.2g})" for v in verdicts if v.status == policy.CLOSE))
                print(f"  {dtype}: bitwise unchanged: {len(unchanged)}")
                broken = broken_equivalences(runs)
                if broken:
                    print(f"  {dtype}: equivalence claims broken (test_equivalent_variants_give_the_same_trajectory): "
                          + ", ".join(broken))


if __name__ == "__main__":
    main()
