"""The IDX-file sources, mnist and fashion-mnist: finding the files along the search
directories, downloading missing ones, strict parsing, checksum status and their
``describe_sources`` rows.

Split from ``sources.py`` (which dispatches here) because this lookup, download and
verification logic concerns only these two sources.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from demixgan.data import idx
from demixgan.data.arrays import _Arrays, _class_counts, _sha256, _stamp
from demixgan.data.catalog import Dataset, IdxFile, identify, verify
from demixgan.data.download import (
    DownloadError,
    dataset_cache_dir,
    describe_attempts,
    download_files,
)
from demixgan.errors import DemixganError

DATA_ENV = "DEMIXGAN_DATA"


def _idx_search_dirs(dataset: Dataset, data_dir: str | os.PathLike | None) -> list[Path]:
    """``data_search_dirs`` for an IDX source: data_dir, $DEMIXGAN_DATA, cache, system dirs."""
    dirs: list[Path] = []
    for base in (data_dir, os.environ.get(DATA_ENV) or None):
        if base is not None:
            base = Path(base).expanduser()
            dirs += [base, base / dataset.name]
    dirs.append(dataset_cache_dir(dataset.name))
    dirs += dataset.system_dirs
    return list(dict.fromkeys(dirs))


def _idx_split(dataset: Dataset, split: str, data_dir, download: bool) -> _Arrays:
    image_file, label_file = dataset.split_files(split)
    dirs = _idx_search_dirs(dataset, data_dir)
    skipped: list[str] = []
    found = {entry: _find(entry, dirs, skipped) for entry in (image_file, label_file)}
    missing = [entry for entry, path in found.items() if path is None]
    if missing and not download:
        raise DemixganError(_missing_message(dataset, split, missing, dirs, skipped, None))
    if missing:
        paths = _download(dataset, split, missing, dirs, skipped)
        found.update(zip(missing, paths, strict=True))
    images = _load_checked(found[image_file], image_file)
    labels = _load_checked(found[label_file], label_file)
    _check_pair(images, labels, found[image_file], found[label_file], dataset)
    return images, labels


def _find(entry: IdxFile, dirs: Sequence[Path], skipped: list[str]) -> Path | None:
    """First ``NAME`` or ``NAME.gz`` along ``dirs`` that is not known to be another dataset's
    file (MNIST and Fashion-MNIST share file names); skipped files are noted in ``skipped``."""
    for directory in dirs:
        for name in (entry.name, entry.gz_name):
            path = directory / name
            if not path.is_file():
                continue
            other = _other_dataset_file(path, entry)
            if other is None:
                return path
            skipped.append(f"{path} was skipped because it is {other}.")
    return None


def _other_dataset_file(path: Path, entry: IdxFile) -> str | None:
    """ "MNIST's t10k-images-idx3-ubyte" when ``path`` holds that instead of ``entry``."""
    try:
        _, archive_sha, content_sha = _idx_content(path, _stamp(path))
    except DemixganError:
        return None  # damaged: it counts as found, and loading it reports the damage
    known = identify(archive_sha, content_sha)
    if known is None or known[1] == entry:
        return None
    return f"{known[0].title}'s {known[1].name}"


def _download(
    dataset: Dataset,
    split: str,
    missing: Sequence[IdxFile],
    dirs: Sequence[Path],
    skipped: Sequence[str],
) -> list[Path]:
    try:
        return download_files(dataset, missing)
    except DownloadError as exc:
        message = _missing_message(dataset, split, exc.missing, dirs, skipped, exc)
        raise DemixganError(message) from exc


def _missing_message(
    dataset: Dataset,
    split: str,
    missing: Sequence[IdxFile],
    dirs: Sequence[Path],
    skipped: Sequence[str],
    failure: DownloadError | None,
) -> str:
    names = ", ".join(f"{e.name}[.gz]" for e in missing)
    cache = dataset_cache_dir(dataset.name)
    if failure is None:
        fetched = "Downloading was turned off."
    else:
        fetched = (
            f"Downloading them into {cache} failed on every mirror: "
            f"{describe_attempts(failure.attempts)}."
        )
    debian = (
        ", install Debian's dataset-fashion-mnist package"
        if dataset.name == "fashion-mnist"
        else ""
    )
    return (
        f"The {dataset.title} {split} split is not available: {names} were not found in "
        f"{', '.join(str(d) for d in dirs)}. {' '.join((*skipped, fetched))} To fix this, "
        f"pass --data-dir DIR (data_dir=DIR) for a directory holding the files, set "
        f"{DATA_ENV}=DIR{debian}, copy "
        f"the files into {cache}, or set DEMIXGAN_MIRRORS to a reachable mirror; the "
        f"mnist-embedded source needs no download."
    )


def _load_checked(path: Path, entry: IdxFile) -> np.ndarray:
    array, status = _read_idx_file(path, entry)
    if status == "mismatch":
        warnings.warn(
            f"{path} does not match the known checksum of {entry.name} "
            f"({entry.expected_hashes}); it is used anyway. Replace it with a genuine copy "
            f"unless it was modified on purpose.",
            stacklevel=4,
        )
    return array


@functools.lru_cache(maxsize=8)
def _idx_content(path: Path, stamp: tuple[int, int]) -> tuple[bytes, str | None, str]:
    """Uncompressed bytes and (archive, content) sha256 of one file, shared by lookup,
    loading and ``describe_sources``."""
    raw = idx.read_file(path)
    content = idx.decompress(raw, path)
    return content, (_sha256(raw) if idx.is_gzip(raw) else None), _sha256(content)


def _read_idx_file(path: Path, entry: IdxFile) -> tuple[np.ndarray, str]:
    """Parsed array (a read-only view of the cached bytes) and verification status."""
    content, archive_sha, content_sha = _idx_content(path, _stamp(path))
    status = verify(entry, archive_sha, content_sha)
    array = idx.parse_idx(content, path)
    expected = ("N", *entry.item_shape)
    if array.dtype != np.uint8 or array.shape[1:] != entry.item_shape:
        raise DemixganError(
            f"The IDX file {path} holds a {array.dtype} array of shape {array.shape}, but "
            f"{entry.name} must hold uint8 {entry.kind} of shape {expected}. Replace it with "
            f"the genuine file."
        )
    return array, status


def _check_pair(images, labels, image_path: Path, label_path: Path, dataset: Dataset) -> None:
    if images.shape[0] != labels.shape[0]:
        raise DemixganError(
            f"{image_path} holds {images.shape[0]} images but {label_path} holds "
            f"{labels.shape[0]} labels; the two files come from different copies or one is "
            f"damaged. Put matching files side by side."
        )
    if labels.size and labels.max() >= len(dataset.class_names):
        raise DemixganError(
            f"{label_path} contains the label {int(labels.max())}, but {dataset.title} has only "
            f"{len(dataset.class_names)} classes; the file is damaged or belongs to another "
            f"dataset."
        )


def _describe_idx(dataset: Dataset, split: str, data_dir) -> dict:
    dirs = _idx_search_dirs(dataset, data_dir)
    notes: list[str] = []
    (image_row, images), (label_row, labels) = (
        _describe_file(entry, dirs, notes) for entry in dataset.split_files(split)
    )
    status = _worst((image_row["checksum"], label_row["checksum"]))
    if status == "missing":
        notes.append("not found in " + ", ".join(str(d) for d in dirs))
    return {
        "path": str(Path(image_row["path"]).parent) if image_row["path"] else None,
        "count": None if images is None else int(images.shape[0]),
        "class_counts": _class_counts(labels, len(dataset.class_names)),
        "checksum": status,
        "detail": " ".join(notes) or None,
        "files": [image_row, label_row],
    }


def _describe_file(
    entry: IdxFile, dirs: Sequence[Path], notes: list[str]
) -> tuple[dict, np.ndarray | None]:
    """(row for ``files``, parsed array or None); explanations go to ``notes``."""
    path = _find(entry, dirs, notes)
    row = {"name": entry.name, "path": str(path) if path else None, "checksum": "missing"}
    if path is None:
        return row, None
    try:
        array, row["checksum"] = _read_idx_file(path, entry)
    except DemixganError as exc:
        notes.append(str(exc))
        return {**row, "checksum": "mismatch"}, None
    if row["checksum"] == "mismatch":
        notes.append(f"{path} does not match {entry.expected_hashes}.")
    if row["checksum"] == "unverified":
        notes.append(f"{path}: no known hash applies to this copy.")
    return row, array


def _worst(statuses) -> str:
    order = ("missing", "mismatch", "unverified", "verified")
    return min(statuses, key=order.index)
