"""Reader for IDX files (the MNIST format), raw or gzip-compressed.

Layout: two zero bytes, a type code, the number of dimensions, one big-endian uint32 per
dimension, then the data in big-endian C order. Everything is checked (magic, type,
dimensions, exact byte count) because a truncated or mislabeled file would otherwise turn
into silently wrong training data; every failure is a DemixganError that names the file.

Decompression is streamed and bounded, so a small gzip that expands to gigabytes (a "gzip
bomb", or just a damaged file) costs neither the memory nor the time: it stops as soon as the
output is not an IDX header, exceeds the size that header declares, or exceeds a fixed cap
(``MAX_IDX_BYTES`` for local files; downloads pass a smaller one).
"""

from __future__ import annotations

import io
import math
import os
import zlib
from collections.abc import Iterable, Iterator
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


#: Largest uncompressed IDX file read (1 GiB): 20 times MNIST's largest file (47 MB) and
#: over a million 28 x 28 images, yet small enough that reading it cannot exhaust memory.
MAX_IDX_BYTES = 1 << 30
_IN_PIECE = 1 << 16  # compressed bytes fed per step (keeps zlib's unconsumed tail small)
_OUT_PIECE = 1 << 20  # most uncompressed bytes produced per step, so a bomb stops in time
_MAX_HEADER = 4 + 4 * 255


class TooLarge(Exception):
    """Decompression stopped early; ``reason`` completes "The IDX file X ..."."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotIdx(Exception):
    """The uncompressed bytes do not start with an IDX header; ``head`` holds those bytes."""

    def __init__(self, head: bytes):
        super().__init__(f"it starts with {head[:4].hex()}")
        self.head = head


def gunzip(pieces: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """Stream-decompress gzip data given in ``pieces`` (concatenated members and zero padding
    allowed, as ``gzip.decompress``), yielding output pieces; raises TooLarge as soon as more
    than ``limit`` bytes come out, zlib.error or EOFError when the data is not intact gzip."""
    member = None  # decompressor of the current member; None between members
    total = 0
    for piece in pieces:
        data = piece
        while True:
            if member is None:
                data = data.lstrip(b"\0")
                if not data:
                    break
                member = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip wrapper, CRC checked
            out = member.decompress(data, _OUT_PIECE)
            data = member.unconsumed_tail
            if out:
                total += len(out)
                if total > limit:
                    raise TooLarge(f"decompresses to more than {limit} bytes")
                yield out
            if member.eof:
                data, member = member.unused_data, None
            elif not data and len(out) < _OUT_PIECE:
                break  # input used up and no output pending
    if member is not None:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


def declared_size(head: bytes) -> int | None:
    """Total bytes the IDX header at the start of ``head`` declares (header included), or
    None while ``head`` is too short to tell."""
    if len(head) < 4 or len(head) < 4 + 4 * head[3]:
        return None
    ndim, dtype = head[3], IDX_TYPES[head[2]]
    shape = np.frombuffer(head, ">u4", count=ndim, offset=4)
    return 4 + 4 * ndim + math.prod(int(d) for d in shape) * dtype.itemsize


def _bad_magic(head: bytes) -> bool:
    """Whether the first 4 bytes already rule out an IDX file (what parse_idx rejects)."""
    return head[0] != 0 or head[1] != 0 or head[2] not in IDX_TYPES or head[3] == 0


def gunzip_idx(pieces: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """``gunzip`` for an IDX file: also stops with NotIdx once the first 4 bytes are not an
    IDX magic, and with TooLarge once the output exceeds the size the header declares or
    the header declares more than ``limit`` bytes; so no bomb is decompressed beyond that."""
    head, declared, total = b"", None, 0
    for out in gunzip(pieces, limit):
        total += len(out)
        if declared is None:
            head = (head + out)[:_MAX_HEADER]
            if len(head) >= 4 and _bad_magic(head):
                raise NotIdx(head)
            declared = declared_size(head)
            if declared is not None and declared > limit:
                raise TooLarge(
                    f"declares {declared} bytes in its header, more than the {limit} bytes accepted"
                )
        if declared is not None and total > declared:
            raise TooLarge(f"decompresses to more than the {declared} bytes its header declares")
        yield out


def decompress(data: bytes, path: str | os.PathLike, limit: int = MAX_IDX_BYTES) -> bytes:
    """Uncompressed bytes (``data`` itself when it is not gzip); ``path`` names it in errors.

    Bounded (see ``gunzip_idx``): a bomb raises a DemixganError instead of a MemoryError.
    """
    if not is_gzip(data):
        return data
    pieces = (data[i : i + _IN_PIECE] for i in range(0, len(data), _IN_PIECE))
    out = io.BytesIO()  # getvalue() hands over its buffer: no second copy of the content
    try:
        for piece in gunzip_idx(pieces, limit):
            out.write(piece)
    except NotIdx as exc:
        parse_idx(exc.head, path)  # raises the "not an IDX file" message
        raise AssertionError("unreachable") from exc
    except TooLarge as exc:
        raise DemixganError(
            f"The IDX file {path} {exc.reason}, so it is damaged or not an IDX file (possibly "
            f"a 'gzip bomb' that would exhaust memory); reading stopped there. {_FIX}"
        ) from None
    except (EOFError, zlib.error) as exc:
        raise DemixganError(
            f"The IDX file {path} is not a valid gzip file ({exc}); it is probably truncated "
            f"or corrupted. {_FIX}"
        ) from exc
    return out.getvalue()


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
