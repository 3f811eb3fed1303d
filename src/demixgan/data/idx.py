"""Reader for IDX files (the MNIST format), raw or gzip-compressed.

Layout: two zero bytes, a type code, the number of dimensions, one big-endian uint32 per
dimension, then the data in big-endian C order. Everything is checked (magic, type,
dimensions, exact byte count) because a truncated or mislabeled file would otherwise turn
into silently wrong training data; every failure is a DemixganError that names the file.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from demixgan.errors import DemixganError

GZIP_MAGIC = b"\x1f\x8b"
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_FIX = (
    "Delete the file so that it is downloaded again, or replace it with an intact copy "
    "(the MNIST-layout files are named like train-images-idx3-ubyte[.gz])."
)


def read_file(path: str | os.PathLike) -> bytes:
    """The bytes of ``path`` as stored (possibly gzip-compressed)."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DemixganError(f"Cannot read the IDX file {path}: {exc}. {_FIX}") from exc


def is_gzip(data: bytes) -> bool:
    """Gzip is recognised by its magic bytes, not by the file name."""
    return data.startswith(GZIP_MAGIC)


def decompress(data: bytes, path: str | os.PathLike) -> bytes:
    """Uncompressed bytes (``data`` itself when it is not gzip); ``path`` names it in errors."""
    if not is_gzip(data):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DemixganError(
            f"The IDX file {path} is not a valid gzip file ({exc}); it is probably truncated "
            f"or corrupted. {_FIX}"
        ) from exc


def parse_idx(data: bytes, path: str | os.PathLike) -> np.ndarray:
    """Decode IDX bytes into a native-endian array; ``path`` is only used in messages."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DemixganError(
            f"The file {path} is not an IDX file: its magic number is {data[:4].hex() or 'empty'}"
            f" but an IDX file starts with 0000 followed by a type code (08 for uint8) and the "
            f"number of dimensions. {_FIX}"
        )
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if ndim == 0:
        raise DemixganError(
            f"The IDX file {path} has a broken header: it declares zero dimensions. {_FIX}"
        )
    if len(data) < header:
        raise DemixganError(
            f"The IDX file {path} is truncated: its header declares {ndim} dimensions but the "
            f"file holds only {len(data)} bytes. {_FIX}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise DemixganError(
            f"The IDX file {path} has the wrong size: its header declares shape {shape} "
            f"({expected} bytes in all) but it holds {len(data)} bytes, so it is truncated or "
            f"corrupted. {_FIX}"
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read and validate one IDX file (``.gz`` or raw); uint8 data comes back read-only."""
    return parse_idx(decompress(read_file(path), path), path)
