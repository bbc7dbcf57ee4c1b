"""The data of the MNIST classifier: real MNIST from a directory, or an embedded default.

    data_root = ""      the embedded default, needing no download: the 1797 real handwritten digits
                        that scikit-learn ships (8x8 scans, 16 grey levels), resized to 28x28 so the
                        documented 784-input model runs unchanged; every sixth digit is held out as
                        the test set (1498 train, 299 test).
    data_root = DIR     the four MNIST IDX files, raw or .gz, in DIR, DIR/raw or DIR/MNIST/raw
                        (torchvision's layout), checked against the format.

Either way the images reach the model as ToTensor gives them: float32 in [0, 1], shape (1, 28, 28),
with int64 labels 0..9. Nothing is downloaded. reference.run reads only its data_root argument; the
command line resolves --mnist-root, then $MNIST_ROOT (resolve_root).
"""
from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .idx import IdxFormatError, magic_number, read_idx, write_idx

ENV_VAR = "MNIST_ROOT"
SPLITS = ("train", "test")
FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
SUBDIRS = (".", "raw", "MNIST/raw")  # where torchvision's MNIST(root) keeps the files, and plain
IMAGES_MAGIC = magic_number(0x08, 3)  # 2051: uint8, 3 dimensions
LABELS_MAGIC = magic_number(0x08, 1)  # 2049: uint8, 1 dimension
SIDE = 28
CLASSES = 10
EMBEDDED_TEST_EVERY = 6  # digits i with i % 6 == 5 form the embedded test set


class MnistDataError(IdxFormatError):
    """The MNIST data cannot be used: a file is missing, damaged, or not MNIST's format."""


# --- MNIST IDX files ----------------------------------------------------------------------------

def find_file(root: str | os.PathLike, name: str) -> Path:
    """The file `name` (or `name`.gz) in root, root/raw or root/MNIST/raw; raw before gzipped."""
    root = Path(root)
    if not root.is_dir():
        raise MnistDataError(f"MNIST root {str(root)!r} is not a directory")
    candidates = [root / sub / n for sub in SUBDIRS for n in (name, name + ".gz")]
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p.relative_to(root)) for p in candidates)
    raise MnistDataError(f"MNIST file {name} not found under {root} (looked for: {looked})")


def read_mnist(root: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split, checked against MNIST's format."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    image_path = find_file(root, FILES[split, "images"])
    label_path = find_file(root, FILES[split, "labels"])
    try:
        images = read_idx(image_path, magic=IMAGES_MAGIC, what="MNIST image")
        labels = read_idx(label_path, magic=LABELS_MAGIC, what="MNIST label")
    except MnistDataError:
        raise
    except IdxFormatError as exc:
        raise MnistDataError(str(exc)) from None
    if images.shape[1:] != (SIDE, SIDE):
        raise MnistDataError(
            f"{image_path}: images are {images.shape[1]}x{images.shape[2]}, the model takes {SIDE}x{SIDE}"
        )
    if len(images) != len(labels):
        raise MnistDataError(f"{image_path} holds {len(images)} images but {label_path} {len(labels)} labels")
    if len(labels) == 0:
        raise MnistDataError(f"{label_path}: no samples")
    if labels.max() >= CLASSES:
        bad = int(np.argmax(labels >= CLASSES))
        raise MnistDataError(f"{label_path}: label {labels[bad]} at index {bad}; MNIST labels are 0..{CLASSES - 1}")
    return images, labels.astype(np.int64)


_CHECKED: set[tuple] = set()


def check_root(root: str | os.PathLike) -> None:
    """Raise MnistDataError unless root holds MNIST's four files, readable and consistent: a run
    checks its data before it starts (each unchanged root is read once per process)."""
    stamp = [str(Path(root).resolve())]
    try:
        for split in SPLITS:
            for kind in ("images", "labels"):
                st = find_file(root, FILES[split, kind]).stat()
                stamp.append((st.st_size, st.st_mtime_ns, st.st_ino))
    except OSError as exc:
        raise MnistDataError(f"MNIST root {str(root)!r}: cannot read it ({exc.strerror or exc})") from None
    if tuple(stamp) in _CHECKED:
        return
    for split in SPLITS:
        read_mnist(root, split)
    _CHECKED.add(tuple(stamp))


# --- the embedded default -----------------------------------------------------------------------

def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resampling with pixel centres aligned (align_corners=False)."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


@cache
def _embedded() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise MnistDataError(
            "the embedded MNIST default needs scikit-learn, which ships the handwritten digits it uses: "
            "pip install scikit-learn (or torch-examples-spec[test]), or pass data_root= a directory "
            "holding the MNIST IDX files"
        ) from exc
    digits = load_digits()
    small = digits.images / 16.0  # (1797, 8, 8), 16 grey levels
    r = _bilinear_matrix(small.shape[1], SIDE)
    big = np.einsum("ij,njk,lk->nil", r, small, r)  # resize every image to 28x28
    images = np.rint(big * 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    for a in (images, labels):
        a.setflags(write=False)
    return images, labels


def embedded_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The embedded default's images (N, 28, 28) uint8 and labels (N,) int64 of one split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    images, labels = _embedded()
    held_out = np.arange(len(labels)) % EMBEDDED_TEST_EVERY == EMBEDDED_TEST_EVERY - 1
    keep = held_out if split == "test" else ~held_out
    return images[keep], labels[keep]


def export_embedded(directory: str | os.PathLike, *, gz: bool = False, overwrite: bool = False) -> list[Path]:
    """Write the embedded default as the four MNIST IDX files (a small stand-in MNIST root)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for split in SPLITS:
        images, labels = embedded_digits(split)
        for kind, array in (("images", images), ("labels", labels.astype(np.uint8))):
            name = FILES[split, kind] + (".gz" if gz else "")
            written.append(write_idx(directory / name, array, overwrite=overwrite))
    return written


# --- what the variant uses ----------------------------------------------------------------------

def load_arrays(data_root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and int64 labels: the embedded default when data_root is "", else MNIST's files."""
    if not isinstance(data_root, str):
        raise ValueError(f"data_root must be a string (a directory, or \"\" for the embedded default), got {data_root!r}")
    return read_mnist(data_root, split) if data_root else embedded_digits(split)


def to_dataset(images: np.ndarray, labels: np.ndarray) -> TensorDataset:
    """As torchvision's ToTensor gives them: float32 images in [0, 1] of shape (1, 28, 28)."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).unsqueeze(1).float().div(255)
    y = torch.from_numpy(np.array(labels, dtype=np.int64))
    return TensorDataset(x, y)


def load_datasets(data_root: str = "") -> tuple[TensorDataset, TensorDataset]:
    """(training_data, test_data) from data_root ("" = the embedded default)."""
    return tuple(to_dataset(*load_arrays(data_root, split)) for split in SPLITS)  # type: ignore[return-value]


def describe(data_root: str = "") -> str:
    """One line saying which data a run used."""
    if not data_root:
        n_train, n_test = (len(embedded_digits(s)[1]) for s in SPLITS)
        return (f"embedded default: scikit-learn's handwritten digits resized to 28x28 "
                f"({n_train} train, {n_test} test)")
    return f"MNIST IDX files under {data_root}"


def resolve_root(cli_value: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """The data_root a command-line run should pass: --mnist-root, else $MNIST_ROOT, else "" (embedded)."""
    if cli_value is not None:
        return cli_value
    return environ.get(ENV_VAR, "")


def batches_per_epoch(data_root: str = "", batch_size: int = 64) -> int:
    """How many training batches (steps) one epoch over data_root's training set takes."""
    n = len(load_arrays(data_root, "train")[1])
    return -(-n // batch_size)
