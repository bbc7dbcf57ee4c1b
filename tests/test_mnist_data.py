"""The MNIST data of blog-mnist-2021: the IDX reader (on small files these tests write), the embedded
default, and how reference.run picks between them. No network, no training beyond a few batches."""
from __future__ import annotations

import gzip
import struct
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reference
from reference.tolerances import tolerance
from reference.mnist import (
    IdxFormatError,
    MnistDataError,
    embedded_digits,
    export_embedded,
    load_datasets,
    read_idx,
    read_mnist,
    resolve_root,
    write_idx,
)
from reference.mnist import data as mnist_data

pytestmark = pytest.mark.mnist

FILES = mnist_data.FILES
CLAIMS = reference.VARIANTS["mnist.quickstart"].claims


def write_mnist(root, n_train=40, n_test=12, *, gz=False, side=28, seed=0):
    """A small MNIST root: random uint8 images, labels 0..9, in the real files' format."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        arrays[split, "images"] = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
        arrays[split, "labels"] = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind in ("images", "labels"):
            write_idx(root / (FILES[split, kind] + (".gz" if gz else "")), arrays[split, kind])
    return arrays


# --- the IDX format -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_keeps_values_dtype_and_shape(tmp_path, dtype, suffix):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write_idx(tmp_path / f"a.idx{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_reader_decodes_a_hand_built_big_endian_file(tmp_path):
    """Independent of write_idx: header 00 00 0B 02, dims 2 x 3 as big-endian uint32, int16 data."""
    values = [1, -2, 300, -32768, 32767, 0]
    content = bytes([0, 0, 0x0B, 2]) + struct.pack(">II", 2, 3) + struct.pack(">6h", *values)
    (tmp_path / "hand.idx").write_bytes(content)
    np.testing.assert_array_equal(read_idx(tmp_path / "hand.idx"), np.array(values, dtype=np.int16).reshape(2, 3))


def test_mnist_images_are_written_with_magic_2051_and_labels_with_2049(tmp_path):
    write_mnist(tmp_path)
    images = (tmp_path / FILES["train", "images"]).read_bytes()
    labels = (tmp_path / FILES["train", "labels"]).read_bytes()
    assert struct.unpack(">IIII", images[:16]) == (2051, 40, 28, 28)
    assert struct.unpack(">II", labels[:8]) == (2049, 40)


@pytest.mark.parametrize("layout", [".", "raw", "MNIST/raw"])
@pytest.mark.parametrize("gz", [False, True], ids=["raw-files", "gz-files"])
def test_reader_finds_the_files_in_root_raw_and_torchvision_layout(tmp_path, layout, gz):
    arrays = write_mnist(tmp_path / layout, gz=gz)
    for split in ("train", "test"):
        images, labels = read_mnist(tmp_path, split)
        np.testing.assert_array_equal(images, arrays[split, "images"])
        np.testing.assert_array_equal(labels, arrays[split, "labels"])
        assert labels.dtype == np.int64


def test_uncompressed_file_is_preferred_to_its_gz_twin(tmp_path):
    raw = write_mnist(tmp_path, seed=1)
    write_mnist(tmp_path, gz=True, seed=2)
    images, _ = read_mnist(tmp_path, "train")
    np.testing.assert_array_equal(images, raw["train", "images"])


def test_missing_file_error_names_the_file_and_where_it_looked(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / FILES["test", "labels"]).unlink()
    with pytest.raises(MnistDataError, match=r"t10k-labels-idx1-ubyte not found under .*looked for: .*raw"):
        read_mnist(tmp_path, "test")


def test_root_that_is_not_a_directory_is_reported(tmp_path):
    with pytest.raises(MnistDataError, match=r"MNIST root .*nowhere.* is not a directory"):
        read_mnist(tmp_path / "nowhere", "train")


def test_truncated_data_is_reported_with_expected_and_found_sizes(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / FILES["train", "images"]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(MnistDataError, match=r"truncated: the header promises 40x28x28 values of uint8 \(31360 bytes of data\), the file holds 31260"):
        read_mnist(tmp_path, "train")


def test_truncated_header_is_reported(tmp_path):
    (tmp_path / "short.idx").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(IdxFormatError, match=r"truncated: 6 bytes, the header alone needs 16"):
        read_idx(tmp_path / "short.idx")


def test_truncated_gzip_file_is_reported(tmp_path):
    write_mnist(tmp_path, gz=True)
    path = tmp_path / (FILES["train", "images"] + ".gz")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(MnistDataError, match=r"damaged or truncated gzip file"):
        read_mnist(tmp_path, "train")


def test_bytes_after_the_data_are_reported(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / FILES["train", "labels"]
    path.write_bytes(path.read_bytes() + b"\0\0\0")
    with pytest.raises(MnistDataError, match=r"3 unexpected bytes after the 40 bytes of data"):
        read_mnist(tmp_path, "train")


def test_a_labels_file_in_place_of_images_is_caught_by_its_magic_number(tmp_path):
    write_mnist(tmp_path)
    images = tmp_path / FILES["train", "images"]
    images.write_bytes((tmp_path / FILES["train", "labels"]).read_bytes())
    with pytest.raises(MnistDataError, match=r"magic number 2049 .*but MNIST image files have 2051"):
        read_mnist(tmp_path, "train")


def test_a_file_that_is_not_idx_is_reported(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"PK\x03\x04 not idx at all")
    with pytest.raises(IdxFormatError, match=r"not an IDX file: it starts with bytes 50 4b 03 04"):
        read_idx(tmp_path / "x.idx")


def test_unknown_type_code_is_reported(tmp_path):
    (tmp_path / "x.idx").write_bytes(bytes([0, 0, 0x0A, 1, 0, 0, 0, 0]))
    with pytest.raises(IdxFormatError, match=r"unknown IDX type code 0x0A"):
        read_idx(tmp_path / "x.idx")


def test_a_label_outside_0_to_9_is_reported(tmp_path):
    write_mnist(tmp_path)
    labels = np.arange(12, dtype=np.uint8) % 10
    labels[7] = 10
    write_idx(tmp_path / FILES["test", "labels"], labels, overwrite=True)
    with pytest.raises(MnistDataError, match=r"label 10 at index 7; MNIST labels are 0..9"):
        read_mnist(tmp_path, "test")


def test_image_and_label_counts_must_agree(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / FILES["test", "labels"], np.zeros(11, dtype=np.uint8), overwrite=True)
    with pytest.raises(MnistDataError, match=r"holds 12 images but .* 11 labels"):
        read_mnist(tmp_path, "test")


def test_images_of_another_size_are_reported(tmp_path):
    write_mnist(tmp_path, side=8)
    with pytest.raises(MnistDataError, match=r"images are 8x8, the model takes 28x28"):
        read_mnist(tmp_path, "train")


def test_write_idx_never_replaces_a_file_unless_asked(tmp_path):
    path = write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.uint8))
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        write_idx(path, np.ones(3, dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(path), np.zeros(3))
    write_idx(path, np.ones(3, dtype=np.uint8), overwrite=True)
    np.testing.assert_array_equal(read_idx(path), np.ones(3))


# --- the embedded default -------------------------------------------------------------------------

def test_embedded_default_has_the_mnist_shapes_and_all_ten_classes():
    train_images, train_labels = embedded_digits("train")
    test_images, test_labels = embedded_digits("test")
    assert train_images.shape == (CLAIMS["embedded_train_samples"], 28, 28) and train_images.dtype == np.uint8
    assert test_images.shape == (CLAIMS["embedded_test_samples"], 28, 28)
    assert set(train_labels.tolist()) == set(test_labels.tolist()) == set(range(10))


def test_embedded_default_is_scikit_learns_digits_resized_to_28x28():
    """Real scans, not noise: the same digits resized by torch's own bilinear interpolation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.tensor(digits.images / 16.0).unsqueeze(1)
    expected = F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False).squeeze(1) * 255
    held_out = np.arange(len(digits.target)) % 6 == 5
    for split, rows in (("train", ~held_out), ("test", held_out)):
        images, labels = embedded_digits(split)
        np.testing.assert_allclose(images.astype(np.float64), expected[rows].numpy(), **tolerance("mnist", "embedded_resize").kwargs)
        np.testing.assert_array_equal(labels, digits.target[rows])


def test_embedded_digits_are_recognisable_by_a_nearest_centroid_classifier():
    """Structure that noise lacks: class means of the training digits classify the test digits."""
    x, y = (a.astype(np.float64) for a in embedded_digits("train"))
    tx, ty = embedded_digits("test")
    centroids = np.stack([x[y == c].mean(axis=0) for c in range(10)]).reshape(10, -1)
    distances = ((tx.reshape(len(tx), 1, -1) - centroids[None]) ** 2).sum(axis=2)
    accuracy = float((distances.argmin(axis=1) == ty).mean())
    assert accuracy >= CLAIMS["embedded_nearest_centroid_accuracy_min"]


def test_datasets_hold_images_as_to_tensor_gives_them():
    training_data, test_data = load_datasets("")
    x, y = training_data.tensors
    images, labels = embedded_digits("train")
    assert x.shape == (len(images), 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(images.copy()).unsqueeze(1).float() / 255)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert len(test_data) == CLAIMS["embedded_test_samples"]


@pytest.mark.parametrize("gz", [False, True], ids=["raw-files", "gz-files"])
def test_embedded_default_exported_as_idx_reads_back_identically(tmp_path, gz):
    export_embedded(tmp_path, gz=gz)
    for split in ("train", "test"):
        for got, want in zip(read_mnist(tmp_path, split), embedded_digits(split)):
            np.testing.assert_array_equal(got, want)


def test_missing_scikit_learn_gives_an_error_naming_the_fix(monkeypatch):
    mnist_data._embedded.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails
    try:
        with pytest.raises(MnistDataError, match=r"needs scikit-learn.*pip install scikit-learn.*data_root"):
            embedded_digits("train")
    finally:
        mnist_data._embedded.cache_clear()


# --- choosing the data ----------------------------------------------------------------------------

def test_run_on_an_idx_root_reads_that_root(tmp_path):
    """The same digits through the IDX files give the same trajectory as the embedded default."""
    export_embedded(tmp_path, gz=True)
    steps = 30  # past the first epoch (24 batches)
    from_files = reference.run("mnist.quickstart", data_root=str(tmp_path), steps=steps, threads=1)
    embedded = reference.run("mnist.quickstart", steps=steps, threads=1)
    assert from_files.losses == embedded.losses
    assert from_files.hyperparameters["data_root"] == str(tmp_path)


def test_run_on_other_idx_data_gives_another_trajectory(tmp_path):
    write_mnist(tmp_path, n_train=100, n_test=20)
    other = reference.run("mnist.quickstart", data_root=str(tmp_path), steps=3, threads=1)
    embedded = reference.run("mnist.quickstart", steps=3, threads=1)
    assert other.losses != embedded.losses and len(other.losses) == 3


def test_run_with_a_missing_root_raises_value_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"MNIST root .*absent.* is not a directory"):
        reference.run("mnist.quickstart", data_root=str(tmp_path / "absent"), steps=1)


def test_data_root_from_command_line_then_environment_then_embedded():
    env = {mnist_data.ENV_VAR: "/from/env"}
    assert resolve_root("/from/cli", env) == "/from/cli"
    assert resolve_root(None, env) == "/from/env"
    assert resolve_root(None, {}) == ""
    assert resolve_root("", env) == ""  # an explicit empty root asks for the embedded default


def test_reference_run_ignores_the_environment(monkeypatch, tmp_path):
    """MNIST_ROOT is for the command line; reference.run depends on its arguments only."""
    monkeypatch.setenv(mnist_data.ENV_VAR, str(tmp_path / "absent"))
    assert reference.run("mnist.quickstart", steps=1, threads=1).hyperparameters["data_root"] == ""


def test_the_gzip_reader_reads_what_gzip_wrote(tmp_path):
    content = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
    (tmp_path / "l.idx.gz").write_bytes(gzip.compress(content))
    np.testing.assert_array_equal(read_idx(tmp_path / "l.idx.gz"), [7, 8, 9])
