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
import math
import os
import platform
import random
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from .catalogue import Variant, lookup
from .trajectory import Trajectory
from .environment import describe as describe_environment
from .precision import ieee_float32, matmul_probe, tf32_state

DTYPE_NAMES = {
    "float32": "float32", "float": "float32", "torch.float32": "float32",
    "float64": "float64", "double": "float64", "torch.float64": "float64",
}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64}


def canonical_dtype(variant: Variant, dtype: Any) -> str:
    if dtype is None:
        return variant.default_dtype
    name = DTYPE_NAMES.get(str(dtype).removeprefix("<class '").removesuffix("'>").replace("numpy.", ""))
    if name is None or name not in variant.dtypes:
        raise ValueError(
            f"dtype {dtype!r} is not supported by {variant.id}. Valid choices: {', '.join(variant.dtypes)}"
        )
    return name


def check_device(variant: Variant, device: Any) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a device name. Valid choices: cpu, cuda, cuda:N") from exc
    if dev.type not in variant.devices:
        raise ValueError(
            f"{variant.id} cannot run on {dev.type!r}. Valid choices: {', '.join(variant.devices)}"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but CUDA is not available here "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}). Valid choices: cpu"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"device {device!r} does not exist. Valid choices: "
                + ", ".join(["cpu"] + [f"cuda:{i}" for i in range(count)])
            )
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r} is not supported. Valid choices: cpu, cuda")
    elif dev.index not in (None, 0):  # torch accepts "cpu:1" and runs on the one CPU device
        raise ValueError(f"device {device!r} does not exist: there is one CPU device. Valid choices: cpu")
    return dev


SEED_LIMIT = 2**32  # np.random.seed and random.seed accept any int, NumPy's legacy seeding only 0 .. 2**32 - 1
INT_LIMIT = 2**31 - 1  # every integer hyperparameter is a count or a size
NON_NEGATIVE = ("lr", "momentum")  # torch.optim rejects negative values of these
SIZE_EXEMPT = ("steps", "batch_size")  # counts that allocate nothing in proportion


def _check_value(variant: Variant, name: str, value: Any, default: Any) -> Any:
    """`value` for hyperparameter `name`, converted to its default's type; ValueError if out of range."""
    if name in variant.choices and value not in variant.choices[name]:
        raise ValueError(
            f"{name}={value!r} is not valid for {variant.id}. Valid choices: "
            + ", ".join(map(str, variant.choices[name]))
        )
    if isinstance(default, bool) or isinstance(default, str):
        if type(value) is not type(default):
            raise ValueError(f"{name} must be a {type(default).__name__}, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if isinstance(default, int):
            if not float(value).is_integer() or not 1 <= value <= INT_LIMIT:
                raise ValueError(f"{name} must be a whole number from 1 to {INT_LIMIT}, got {value!r}")
            return int(value)
        if name in NON_NEGATIVE and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return float(value)
    return value


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_sizes(variant: Variant, hp: Mapping[str, Any]) -> None:
    """Refuse sizes whose largest tensor (the product of two sizes, as N x D_in) cannot fit in memory,
    before any allocation fails halfway through a run."""
    sizes = {k: v for k, v in hp.items() if type(v) is int and k not in SIZE_EXEMPT}
    memory = _memory_bytes()
    if not sizes or memory is None:
        return
    names = sorted(sizes, key=sizes.get, reverse=True)[:2]
    elements = math.prod(sizes[n] for n in names)
    needed = elements * 8  # float64, the widest dtype a run may use
    if needed > memory:
        raise ValueError(
            f"{' x '.join(f'{n}={sizes[n]}' for n in names)} needs a tensor of {elements:.3g} numbers "
            f"({needed / 2**30:.3g} GiB in float64), more than this machine's {memory / 2**30:.3g} GiB of memory"
        )


def resolve_hyperparameters(variant: Variant, overrides: Mapping[str, Any]) -> dict[str, Any]:
    hp = dict(variant.hyperparameters)
    for name, value in overrides.items():
        if name not in hp or name == "steps":
            valid = [k for k in hp if k != "steps"]
            raise ValueError(
                f"unknown override {name!r} for {variant.id}. Valid choices: {', '.join(valid)}"
                " (use steps= for the number of steps)"
            )
        hp[name] = _check_value(variant, name, value, hp[name])
    _check_sizes(variant, hp)
    return hp


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


def check_full_precision(trajectory: "Trajectory") -> None:
    """AssertionError unless a CUDA run says TF32 was off and its matmul probe shows IEEE float32.

    The probe's bound is specs/tolerances.toml [float32_matmul_probe]; CPU runs pass (no TF32).
    """
    if not trajectory.device.startswith("cuda"):
        return
    from .tolerances import tolerance

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


@dataclass(frozen=True, eq=False)
class Plan:
    """A run's arguments, checked and resolved. Plans that make the same run are equal and hash
    alike, however their arguments were spelled (dtype "double" is "float64", defaults filled in)."""

    variant: Variant
    seed: int
    device: torch.device
    dtype: str
    steps: int
    threads: int | None
    hyperparameters: Mapping[str, Any]
    compile: str | None = None

    def key(self) -> tuple:
        return (self.variant.id, self.seed, str(self.device), self.dtype, self.steps, self.threads,
                tuple(sorted(self.hyperparameters.items())), self.compile)

    def arguments(self) -> dict[str, Any]:
        """plan()'s arguments that make this plan again (the hyperparameters that differ from the variant's)."""
        overrides = {k: v for k, v in self.hyperparameters.items()
                     if k != "steps" and v != self.variant.hyperparameters.get(k)}
        return dict(seed=self.seed, device=str(self.device), dtype=self.dtype, steps=self.steps,
                    threads=self.threads, compile=self.compile, **overrides)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())


def plan(
    variant_id: str,
    *,
    seed: int = 0,
    device: Any = "cpu",
    dtype: Any = None,
    steps: int | None = None,
    threads: int | None = None,
    compile: str | None = None,
    **overrides: Any,
) -> Plan:
    """Check every argument of a run; raise ValueError naming the problem and the valid choices."""
    variant = lookup(variant_id)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be a non-negative integer below 2**32 ({SEED_LIMIT}), got {seed!r}")
    if steps is None:
        steps = variant.steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
    dev = check_device(variant, device)
    dtype_name = canonical_dtype(variant, dtype)
    hyperparameters = resolve_hyperparameters(variant, overrides)
    if variant.family == "mnist" and hyperparameters.get("data_root"):
        from .mnist.data import check_root

        check_root(hyperparameters["data_root"])  # the files, before a run that would fail on them
    return Plan(
        variant=variant,
        seed=seed,
        device=dev,
        dtype=dtype_name,
        steps=steps,
        threads=threads,
        hyperparameters=MappingProxyType(hyperparameters),
        compile=_check_compile(variant, compile),
    )


def _check_compile(variant: Variant, compile: Any) -> str | None:
    if compile is None:
        return None  # eager runs never import the compiler stack
    from .compiling import check_compile

    return check_compile(variant, compile)


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
    start: Mapping[str, Any] | None = None,
) -> Trajectory:
    """Make the run `p` plans; on_step(t, loss) is called after every step (progress printing);
    trace_steps: record the op trace of those steps (reference.trace); start: train from these
    values (named as make() names them: e.g. the NumPy program's start, for its torch translation)
    instead of the plan's own draw."""
    if trace_steps is not None and p.compile is not None:
        # dynamo skips a frame first called inside the trace's dispatch mode, and keeps skipping it:
        # the "compiled" run would be eager
        raise ValueError(f"trace_steps cannot be recorded in a compile={p.compile!r} run (dynamo does not compile "
                         f"under the trace's dispatch mode). Valid choices: trace_steps=None, or compile=None")
    variant, dev, dtype_name, hp, steps, seed = p.variant, p.device, p.dtype, p.hyperparameters, p.steps, p.seed
    module = variant.module()

    losses: list[float] = []

    recorder = None

    def record(t: int, loss: Any) -> None:
        value = _loss_value(loss)
        losses.append(value)
        if on_step is not None:
            on_step(t, value)
        if recorder is not None:
            recorder.on_record(t)

    compile_stats: dict[str, int] = {}
    with thread_count(p.threads) as n_threads, full_precision_matmul(dev) as tf32:
        placed = draw_start(p) if start is None else {k: place(v, dev, dtype_name) for k, v in start.items()}
        with contextlib.ExitStack() as compiling:
            if p.compile is not None:
                from . import compiling as comp

                compile_stats = compiling.enter_context(comp.compiled_run(p.compile))
                placed = {name: comp.compile_module(v, p.compile) if isinstance(v, torch.nn.Module) else v
                          for name, v in placed.items()}
            if trace_steps is not None:
                from .trace import Recorder

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
        if p.compile is not None:
            params = {comp.parameter_name(name): v for name, v in params.items()}
        probe = matmul_probe(dev) if dev.type == "cuda" else None  # the precision the run had

    return Trajectory(
        variant=variant.id,
        seed=seed,
        device=str(dev),
        dtype=dtype_name,
        steps=steps,
        threads=n_threads,
        losses=losses,
        params=_to_cpu_params(params),
        hyperparameters={k: v for k, v in hp.items() if k != "steps"},
        torch_version=torch.__version__,
        numpy_version=np.__version__,
        python_version=platform.python_version(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        tf32=tf32,
        wall_time_s=wall,
        environment={**describe_environment(dev), "threads": n_threads},
        float32_matmul_error=probe,
        compile=p.compile,
        compile_stats=dict(compile_stats),
        trace=None if recorder is None else recorder.result(
            dict(variant=variant.id, seed=seed, device=str(dev), dtype=dtype_name, torch_version=torch.__version__)),
    )


def run(variant_id: str, *, trace_steps: Any = None, **arguments: Any) -> Trajectory:
    """Run one variant from a seeded start and return its Trajectory: execute(plan(variant_id, ...)).

    arguments are plan()'s: seed (0), device ("cpu"), dtype (the tutorial's), steps (the tutorial's),
    threads (None: leave torch's setting), compile (None: eager; "aot_eager" or "inductor" runs the
    variant's model and optimizer step through torch.compile, reference/compiling.py), and any of the
    variant's hyperparameters by name (lr=1e-3).
    Data and weights are drawn on the CPU at the tutorial's own dtype, in the tutorial's order,
    then cast to `dtype` and moved to `device`: every device and dtype starts from the same numbers.
    trace_steps (e.g. [0, 1]): record the op trace of those steps in Trajectory.trace (reference.trace).
    """
    return execute(plan(variant_id, **arguments), trace_steps=trace_steps)
