"""The IDX file format of the MNIST distribution (the files torchvision downloads), raw or gzipped.

    magic   2 zero bytes, 1 byte type code, 1 byte number of dimensions
    dims    one big-endian uint32 per dimension
    data    the values, big-endian, C order

MNIST's images are uint8 with 3 dimensions (magic 2051 = 0x00000803), its labels uint8 with 1
(magic 2049 = 0x00000801). Everything read is checked against the header; a problem raises
IdxFormatError naming the file and what is wrong with it.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..files import atomic_write

# type code -> dtype of the values as stored (big-endian)
TYPE_CODES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dt.newbyteorder("="): code for code, dt in TYPE_CODES.items()}


class IdxFormatError(ValueError):
    """A file is missing, unreadable, or not the IDX file it should be."""


def magic_number(type_code: int, ndim: int) -> int:
    return (type_code << 8) | ndim


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's content, gunzipped when its name ends in .gz."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise IdxFormatError(f"{path}: no such file") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise IdxFormatError(f"{path}: damaged or truncated gzip file ({exc})") from None
    except OSError as exc:
        raise IdxFormatError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def describe_magic(magic: int) -> str:
    dtype = TYPE_CODES.get(magic >> 8)
    return f"{magic} (0x{magic:08X}: {dtype.name if dtype else 'unknown type'}, {magic & 0xFF} dimensions)"


def parse_idx(content: bytes, name: str = "<bytes>", *, magic: int | None = None, what: str = "") -> np.ndarray:
    """Decode IDX bytes into an array in native byte order; check the header against the data.

    With `magic`, the file must carry that magic number (`what` names such files in the message).
    """
    if len(content) < 4:
        raise IdxFormatError(f"{name}: truncated: {len(content)} bytes, too short for an IDX header (4 bytes)")
    zero, type_code, ndim = struct.unpack(">HBB", content[:4])
    if zero != 0:
        raise IdxFormatError(
            f"{name}: not an IDX file: it starts with bytes {content[:4].hex(' ')}, "
            "an IDX file starts with 00 00 <type> <dims>"
        )
    found_magic = magic_number(type_code, ndim)
    if magic is not None and found_magic != magic:
        raise IdxFormatError(
            f"{name}: magic number {describe_magic(found_magic)}, but {what or 'such'} files have {describe_magic(magic)}"
        )
    if type_code not in TYPE_CODES:
        known = ", ".join(f"0x{c:02X}" for c in TYPE_CODES)
        raise IdxFormatError(f"{name}: unknown IDX type code 0x{type_code:02X} (known: {known})")
    if ndim == 0:
        raise IdxFormatError(f"{name}: IDX header gives 0 dimensions")
    header = 4 + 4 * ndim
    if len(content) < header:
        raise IdxFormatError(
            f"{name}: truncated: {len(content)} bytes, the header alone needs {header} for {ndim} dimensions"
        )
    dims = struct.unpack(f">{ndim}I", content[4:header])
    dtype = TYPE_CODES[type_code]
    expected = math.prod(dims) * dtype.itemsize
    found = len(content) - header
    if found < expected:
        raise IdxFormatError(
            f"{name}: truncated: the header promises {'x'.join(map(str, dims))} values of {dtype.name} "
            f"({expected} bytes of data), the file holds {found}"
        )
    if found > expected:
        raise IdxFormatError(
            f"{name}: {found - expected} unexpected bytes after the {expected} bytes of data "
            f"its header ({'x'.join(map(str, dims))} {dtype.name}) promises"
        )
    data = np.frombuffer(content, dtype=dtype, count=math.prod(dims), offset=header)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike, *, magic: int | None = None, what: str = "") -> np.ndarray:
    """Read one IDX file (path ending in .gz: gzipped); with `magic`, it must carry that magic number."""
    return parse_idx(read_bytes(path), str(path), magic=magic, what=what)


def encode_idx(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODE_OF:
        known = ", ".join(dt.name for dt in TYPE_CODES.values())
        raise ValueError(f"IDX cannot store {array.dtype}; it stores {known}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX stores 1 to 255 dimensions, got {array.ndim}")
    code = _CODE_OF[native]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=TYPE_CODES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write `array` as an IDX file (gzipped when path ends in .gz), atomically.

    Refuses to replace an existing file unless overwrite=True.
    """
    content = encode_idx(array)
    if Path(path).suffix == ".gz":
        content = gzip.compress(content, mtime=0)
    return atomic_write(path, lambda f: f.write(content), overwrite=overwrite)
