"""Array helpers shared by the image source modules (idx_sources, embedded_source,
folder_source): read-only cached arrays, cache keys, the seeded per-class train/test split and
the pieces of ``describe_sources`` rows that every source fills the same way.

They live here rather than in ``sources.py`` so that the source modules need not import the
public API module that dispatches to them.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

SPLIT_SEED = 5270  # seeds the per-class train/test split of mnist-embedded and folder sources
TEST_FRACTION = 0.2
_Arrays = tuple[np.ndarray, np.ndarray]  # images [N, H, W] (uint8 or float32), labels [N]


def _stamp(path: Path) -> tuple[int, int]:
    """(mtime, size): part of cache keys, so a replaced file is read again."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _test_mask(labels: np.ndarray) -> np.ndarray:
    """Seeded, stratified test selection: round(TEST_FRACTION * n) images of each class."""
    mask = np.zeros(labels.shape[0], dtype=bool)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n_test = math.floor(TEST_FRACTION * members.size + 0.5)
        rng = np.random.default_rng([SPLIT_SEED, int(cls)])
        mask[rng.permutation(members)[:n_test]] = True
    return mask


def _split(arrays: _Arrays, split: str) -> _Arrays:
    images, labels = arrays
    rows = _test_mask(labels)
    if split == "train":
        rows = ~rows
    return _readonly(images[rows]), _readonly(labels[rows])


def _readonly(array: np.ndarray) -> np.ndarray:
    """Cached arrays are shared between calls, so they must not be modified in place."""
    array.flags.writeable = False
    return array


def _class_counts(labels: np.ndarray | None, n: int) -> list[int] | None:
    if labels is None:
        return None
    return [int(c) for c in np.bincount(labels.astype(np.int64), minlength=n)[:n]]


def _absent(detail: str) -> dict:
    return {
        "path": None,
        "count": None,
        "class_counts": None,
        "checksum": "missing",
        "detail": detail,
        "files": [],
    }
