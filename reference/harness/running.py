"""What every variant shares, written once: seeding, dtype and device placement, thread control,
timing and recording. A variant module provides two functions:

    make(<hyperparameters it names>)  -> dict of what the tutorial draws (data, weights, model),
                                         drawn on the CPU at the tutorial's own dtype, in its order;
    train(<those names>, <hyperparameters it names>, steps, record) -> dict of final parameters,
                                         calling record(t, loss) once per step, before the update.

The harness passes each function exactly the arguments its signature names.
"""
from __future__ import annotations

import contextlib
import inspect
import platform
import random
import time
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from ..trace.record import Recorder
from .environment import describe as describe_environment, fingerprint
from .planning import NUMPY_DTYPES, TORCH_DTYPES, Plan, plan
from .precision import ieee_float32, matmul_probe, tf32_state
from .state import StateDigests
from .trajectory import Trajectory


def seed_everything(seed: int) -> None:
    """What the official programs get when seeded at their top."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


@contextlib.contextmanager
def thread_count(threads: int | None) -> Iterator[int]:
    """torch's intra-op threads and NumPy's BLAS threads for the run, restored afterwards.

    Note [NumPy's BLAS threads]
    ~~~~~~~~~~~~~~~~~~~~~~~~~~~
    NumPy's BLAS counts too: two OpenBLAS threads change mlp.numpy's bits, and on two cores, or
    beside xdist workers, run it ~25x slower.
    So every run, test and measurement pins NumPy's BLAS to the run's thread count.
    """
    before = torch.get_num_threads()
    try:
        with contextlib.ExitStack() as stack:
            if threads is not None:
                from threadpoolctl import threadpool_limits

                stack.enter_context(threadpool_limits(limits=threads, user_api="blas"))
                torch.set_num_threads(threads)
            yield torch.get_num_threads()
    finally:
        # after threadpoolctl's own restore, which may touch the MKL that torch shares
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def full_precision_matmul(device: torch.device) -> Iterator[bool | None]:
    """CUDA runs use IEEE float32 matmul (no TF32), whatever the caller had set; restored after.

    Yields the TF32 state read back from torch once switched: False on CUDA, None on the CPU.
    """
    with ieee_float32(device):
        yield tf32_state(device)


def check_full_precision(trajectory: Trajectory) -> None:
    """AssertionError unless a CUDA run says TF32 was off and its matmul probe shows IEEE float32.

    The probe's bound is specs/tolerances.toml [float32_matmul_probe]; CPU runs pass (no TF32).
    """
    if not trajectory.device.startswith("cuda"):
        return
    from ..tolerances import tolerance

    bound = tolerance("float32_matmul_probe")
    errors = trajectory.float32_matmul_error or {}
    problems = [] if trajectory.tf32 is False else [f"torch reports TF32 {'on' if trajectory.tf32 else 'unknown'}"]
    problems += [
        f"float32 {op} is off by {err:.2g} relative (IEEE float32 <= {bound.rtol:g}; TF32 gives 1e-4 .. 1e-3)"
        for op, err in sorted(errors.items()) if not err <= bound.rtol + bound.atol
    ]
    if not errors:
        problems.append("no float32 matmul probe was recorded")
    if problems:
        raise AssertionError(f"{trajectory.variant} on {trajectory.device} did not run in IEEE float32: " + "; ".join(problems))


def place(value: Any, device: torch.device, dtype: str) -> Any:
    """Cast what make() drew to the run's dtype, then move it to the run's device."""
    if isinstance(value, torch.nn.Module):
        return value.to(device=device, dtype=TORCH_DTYPES[dtype])
    if isinstance(value, torch.Tensor):
        # detach first so that a cast weight is still a leaf that autograd fills with .grad
        moved = value.detach()
        if moved.is_floating_point():
            moved = moved.to(dtype=TORCH_DTYPES[dtype])
        moved = moved.to(device=device)
        return moved.requires_grad_(value.requires_grad)
    if isinstance(value, np.ndarray):
        return value.astype(NUMPY_DTYPES[dtype])
    if isinstance(value, float):
        return NUMPY_DTYPES[dtype](value)
    return value


def _call(fn: Callable[..., Any], available: Mapping[str, Any]) -> Any:
    names = inspect.signature(fn).parameters
    missing = [n for n in names if n not in available]
    if missing:
        raise TypeError(f"{fn.__module__}.{fn.__name__} asks for {missing}, which the harness does not have")
    return fn(**{n: available[n] for n in names})


def _to_cpu_params(params: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in params.items():
        if isinstance(value, torch.Tensor):
            out[name] = value.detach().to("cpu").clone()
        else:
            out[name] = torch.as_tensor(np.asarray(value)).clone()
    return out


def _loss_value(loss: Any) -> float:
    return loss.item() if isinstance(loss, torch.Tensor) else float(loss)


def draw_start(p: Plan) -> dict[str, Any]:
    """What the variant's make() draws from the plan's seed, cast to its dtype and moved to its device:
    the start every run of this plan trains from. Call it inside thread_count(p.threads) where the
    draw's bits must match a run's (NumPy draws are thread-independent; torch's CPU draws are too)."""
    seed_everything(p.seed)
    drawn = _call(p.variant.module().make, p.hyperparameters)
    return {name: place(value, p.device, p.dtype) for name, value in drawn.items()}


def execute(
    p: Plan,
    *,
    on_step: Callable[[int, float], None] | None = None,
    trace_steps: Any = None,
    record_state: bool = False,
    start: Mapping[str, Any] | None = None,
) -> Trajectory:
    """Make the run `p` plans; on_step(t, loss) is called after every step (progress printing);
    trace_steps: record the op trace of those steps (reference.trace); record_state: keep a
    fingerprint of the state entering every step (Trajectory.state_digests, reference/harness/state.py);
    start: train from these values (named as make() names them: e.g. the NumPy program's start, for
    its torch translation) instead of the plan's own draw."""
    if trace_steps is not None and p.compile is not None:
        # dynamo skips a frame first called inside the trace's dispatch mode, and keeps skipping it:
        # the "compiled" run would be eager
        raise ValueError(f"trace_steps cannot be recorded in a compile={p.compile!r} run (dynamo does not compile "
                         f"under the trace's dispatch mode). Valid choices: trace_steps=None, or compile=None")
    variant, dev, dtype_name, hp, steps = p.variant, p.device, p.dtype, p.hyperparameters, p.steps
    module = variant.module()

    losses: list[float] = []
    recorder: Recorder | None = None
    state: StateDigests | None = None

    def record(t: int, loss: Any) -> None:
        value = _loss_value(loss)
        losses.append(value)
        if state is not None:
            state.at_step()
        if on_step is not None:
            on_step(t, value)
        if recorder is not None:
            recorder.on_record(t)

    compile_stats: dict[str, int] = {}
    with thread_count(p.threads) as n_threads, full_precision_matmul(dev) as tf32:
        placed = draw_start(p) if start is None else {k: place(v, dev, dtype_name) for k, v in start.items()}
        with contextlib.ExitStack() as stack:
            if p.compile is not None:
                from . import compiling as comp

                compile_stats = stack.enter_context(comp.compiled_run(p.compile))
                placed = {name: comp.compile_module(v, p.compile) if isinstance(v, torch.nn.Module) else v
                          for name, v in placed.items()}
            if record_state:
                state = stack.enter_context(StateDigests.during_run(placed))
            if trace_steps is not None:
                recorder = Recorder(trace_steps, steps - 1, placed)
                recorder.start()
            started = time.perf_counter()
            try:
                params = _call(module.train, {**hp, **placed, "steps": steps, "record": record})
            finally:
                if recorder is not None:
                    recorder.stop()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            wall = time.perf_counter() - started
            if state is not None:
                state.at_end()
        if p.compile is not None:
            params = {comp.parameter_name(name): v for name, v in params.items()}
        probe = matmul_probe(dev) if dev.type == "cuda" else None  # the precision the run had

    return _trajectory(p, losses=losses, params=params, threads=n_threads, tf32=tf32, wall=wall, probe=probe,
                       compile_stats=compile_stats, recorder=recorder, state=state)


def _trajectory(p: Plan, *, losses: list[float], params: Mapping[str, Any], threads: int, tf32: Any, wall: float,
                probe: Any, compile_stats: Mapping[str, int], recorder: Recorder | None,
                state: StateDigests | None) -> Trajectory:
    """What a finished run of `p` computed, and the environment it computed it in."""
    dev, variant = p.device, p.variant
    environment = {**describe_environment(dev), "threads": threads}
    return Trajectory(
        variant=variant.id,
        seed=p.seed,
        device=str(dev),
        dtype=p.dtype,
        steps=p.steps,
        threads=threads,
        losses=losses,
        params=_to_cpu_params(params),
        hyperparameters={k: v for k, v in p.hyperparameters.items() if k != "steps"},
        torch_version=torch.__version__,
        numpy_version=np.__version__,
        python_version=platform.python_version(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        tf32=tf32,
        wall_time_s=wall,
        environment=environment,
        float32_matmul_error=probe,
        compile=p.compile,
        compile_stats=dict(compile_stats),
        trace=None if recorder is None else recorder.result(
            dict(variant=variant.id, seed=p.seed, device=str(dev), dtype=p.dtype, torch_version=torch.__version__,
                 environment=fingerprint(environment))),
        state_digests=None if state is None else state.digests,
    )


def run(variant_id: str, *, trace_steps: Any = None, record_state: bool = False, **arguments: Any) -> Trajectory:
    """Run one variant from a seeded start and return its Trajectory: execute(plan(variant_id, ...)).

    arguments are plan()'s: seed (0), device ("cpu"), dtype (the tutorial's), steps (the tutorial's),
    threads (None: leave torch's setting), compile (None: eager; "aot_eager" or "inductor" runs the
    variant's model and optimizer step through torch.compile, reference/harness/compiling.py), and any
    of the variant's hyperparameters by name (lr=1e-3).
    Data and weights are drawn on the CPU at the tutorial's own dtype, in the tutorial's order,
    then cast to `dtype` and moved to `device`: every device and dtype starts from the same numbers.
    trace_steps (e.g. [0, 1]): record the op trace of those steps in Trajectory.trace (reference.trace);
    record_state: a fingerprint of the state entering every step in Trajectory.state_digests.
    """
    return execute(plan(variant_id, **arguments), trace_steps=trace_steps, record_state=record_state)
