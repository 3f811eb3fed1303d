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
#: The validation part carved from every source's training images, per class: 1/12 of them
#: (MNIST's 60,000 training digits give the paper's 55,000 / 5,000), seeded apart from the test
#: split. Budgets and settings are chosen on it; the test split is read only to report.
VALIDATION_SEED = 6121
VALIDATION_FRACTION = 1 / 12
_Arrays = tuple[np.ndarray, np.ndarray]  # images [N, H, W] (uint8 or float32), labels [N]


def _stamp(path: Path) -> tuple[int, int]:
    """(mtime, size): part of cache keys, so a replaced file is read again."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _held_out(n: int, fraction: float) -> int:
    """Images of a class of ``n`` that a seeded, stratified selection holds out."""
    return math.floor(fraction * n + 0.5)


def _stratified_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Seeded, stratified selection: round(fraction * n) images of each class."""
    mask = np.zeros(labels.shape[0], dtype=bool)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng = np.random.default_rng([seed, int(cls)])
        mask[rng.permutation(members)[: _held_out(members.size, fraction)]] = True
    return mask


def _split(arrays: _Arrays, split: str) -> _Arrays:
    """The train (the whole training part) or test split of a source without official ones."""
    return _held_out_part(arrays, TEST_FRACTION, SPLIT_SEED, rest=split == "train")


def carve_validation(arrays: _Arrays, split: str) -> _Arrays:
    """From a source's whole training part: its ``validation`` images, or the ``train`` rest."""
    return _held_out_part(arrays, VALIDATION_FRACTION, VALIDATION_SEED, rest=split == "train")


def _held_out_part(arrays: _Arrays, fraction: float, seed: int, *, rest: bool) -> _Arrays:
    """The images ``_stratified_mask`` holds out, or with ``rest`` every other one (read-only)."""
    images, labels = arrays
    rows = _stratified_mask(labels, fraction, seed)
    if rest:
        rows = ~rows
    return _readonly(images[rows]), _readonly(labels[rows])


def carved_counts(class_counts: list[int], split: str) -> list[int]:
    """Per-class counts of ``carve_validation``'s ``split`` from the training part's counts."""
    held = [_held_out(n, VALIDATION_FRACTION) for n in class_counts]
    if split == "validation":
        return held
    return [n - h for n, h in zip(class_counts, held, strict=True)]


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
