"""Data and files, specified on their own (specs/building_blocks.toml):

    the MNIST DataLoader   DataLoader(data, batch_size) without shuffling: batches in dataset order,
                           each batch_size long, the last one kept however short
    torch.save / load      a state_dict round trip: every tensor bit for bit, its dtype, the keys' order
    the seeded streams     what torch.randn, NumPy's legacy np.random.randn and python's random draw
                           from a seed, against a short fingerprint recorded per seed: a changed stream
                           is named as such ("seeded stream changed"), not found as a trajectory failure

Note [a stream fingerprint every CPU draws alike]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
torch.randn fills tensors of 16 or more numbers with a vectorised Box-Muller whose float32 rounding
depends on the CPU's kernel path (ATEN_CPU_CAPABILITY=default draws other last bits), while smaller
tensors take the scalar path every CPU computes alike. The fingerprints are of 8-number draws, so
they name a changed generator or transform, not another CPU: the trajectories' own policy judges
what a kernel path does to the large draws.
"""
from __future__ import annotations

import hashlib
import io
import random
from typing import Any, Mapping

import numpy as np
import torch

STREAM_DRAWS = 8  # numbers per stream: below torch.randn's vectorised path (See Note above)


def loader_problems(data: Any, batch_size: int) -> list[str]:
    """The programs' DataLoader(data, batch_size) yields the dataset in order, batch_size at a time,
    keeping the last, shorter batch."""
    from torch.utils.data import DataLoader

    n = len(data)
    batches = list(DataLoader(data, batch_size=batch_size))
    sizes = [len(b[0]) for b in batches]
    want = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    if sizes != want:
        return [f"DataLoader(batch_size={batch_size}) over {n} samples gave batches of {sizes[:3]}..{sizes[-3:]} "
                f"({len(sizes)} batches), expected {len(want)} of {batch_size} with the last of {want[-1]}"]
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    full = [data[i] for i in range(n)]
    if not (torch.equal(images, torch.stack([x for x, _ in full])) and
            torch.equal(labels, torch.as_tensor([int(y) for _, y in full]))):
        return [f"DataLoader(batch_size={batch_size}) without shuffle changed the order of the samples"]
    return []


def save_load_problems(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """torch.save then torch.load of a state_dict: the same keys in the same order, each tensor's
    dtype, shape and bits."""
    buffer = io.BytesIO()
    torch.save(dict(state_dict), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    problems = []
    if list(loaded) != list(state_dict):
        problems.append(f"torch.load gave the keys {list(loaded)[:4]}..., saved in the order {list(state_dict)[:4]}...")
    for key, value in state_dict.items():
        got = loaded.get(key)
        if got is None or got.dtype != value.dtype or got.shape != value.shape or not torch.equal(got, value):
            problems.append(f"torch.save / torch.load changed {key} ({value.dtype}, {tuple(value.shape)})")
    return problems


def _digest(values: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()[:16]


def stream_fingerprint(seed: int) -> dict[str, str]:
    """What each generator draws first from `seed`, as a short digest of the bits. Restores every
    generator's state: the caller's draws are not disturbed."""
    torch_state, numpy_state, python_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        torch.manual_seed(seed)
        randn = torch.randn(STREAM_DRAWS).numpy()
        np.random.seed(seed)
        np_randn = np.random.randn(STREAM_DRAWS)
        random.seed(seed)
        py_random = np.array([random.random() for _ in range(STREAM_DRAWS)])
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {"torch.randn": _digest(randn), "numpy.random.randn": _digest(np_randn),
            "random.random": _digest(py_random)}


def stream_problems(recorded: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Each recorded seed's fingerprint against what the generators draw here."""
    problems = []
    for seed, streams in recorded.items():
        now = stream_fingerprint(int(seed))
        for name, digest in streams.items():
            if now.get(name) != digest:
                problems.append(f"seeded stream changed: {name} from seed {seed} draws other numbers "
                                f"(fingerprint {now.get(name)}, recorded {digest})")
    return problems
