"""Minimal reproduction: a compiled SGD(momentum) step on 0-dim float64 Parameters ignores the
gradient from its second call on (torch 2.13.0+cpu; specs/compile.toml, poly.dynamic float64).

    python benchmarks/repro_compiled_sgd.py          # eager, aot_eager, inductor (a cold inductor compile: ~30 s)

Prints each backend's parameter after two steps against eager's. Backend "eager" (dynamo alone)
agrees; "aot_eager" and "inductor" take the second step with momentum * buffer only (1.351 instead
of 1.151 here). float32, or a 1-element instead of a 0-dim Parameter, agree.
"""
import sys

import torch


def two_steps(backend: str | None, dtype: torch.dtype = torch.float64, shape: tuple = ()) -> float:
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(shape, dtype=dtype))
    opt = torch.optim.SGD([p], lr=1e-8, momentum=0.9)
    step = opt.step if backend is None else torch.compile(lambda: opt.step(), backend=backend)
    for t in range(2):
        opt.zero_grad()
        p.grad = torch.full(shape, 1e7 * (t + 1), dtype=dtype)
        step()
    return p.detach().flatten()[0].item()


def main(backends: list[str]) -> int:
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}")
    wrong = 0
    for dtype, shape in ((torch.float64, ()), (torch.float32, ()), (torch.float64, (1,))):
        eager = two_steps(None, dtype, shape)
        for backend in backends:
            got = two_steps(backend, dtype, shape)
            ok = got == eager
            wrong += not ok
            print(f"{str(dtype):14} shape {str(shape):5} {backend:9}: {got!r:22} eager {eager!r:22} "
                  f"{'same' if ok else 'DIFFERENT'}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["eager", "aot_eager", "inductor"]))
