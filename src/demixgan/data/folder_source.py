"""The folder source: user *.png / *.npy images in a directory (one subdirectory per class,
or the directory itself as one class), validated, split with the seeded per-class split, and
its ``describe_sources`` rows.

Split from ``sources.py`` (which dispatches here) because reading and checking arbitrary user
files has nothing in common with the catalogued datasets.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from demixgan.data.arrays import _absent, _Arrays, _class_counts, _split, _stamp
from demixgan.errors import DemixganError
from demixgan.io.images import read_npy, read_png


def _folder_root(data_dir) -> Path:
    if data_dir is None:
        raise DemixganError(
            "The folder source reads *.png and *.npy images from a directory, but none was "
            "given; pass --data-dir DIR (load_images('folder', data_dir=DIR))."
        )
    return Path(data_dir).expanduser()


def _folder_layout(root: Path) -> list[tuple[str, list[Path]]]:
    """(class name, sorted image files) per class: subdirectories, or the folder itself."""
    if not root.is_dir():
        raise DemixganError(
            f"The image folder {root} does not exist or is not a directory; pass --data-dir "
            f"with a directory of *.png / *.npy images (or one subdirectory per class)."
        )
    top = _image_files(root)
    if top:
        return [(root.resolve().name, top)]
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    layout = [(d.name, _image_files(d)) for d in subdirs]
    empty = [str(root / name) for name, files in layout if not files]
    if not layout or empty:
        where = f"the class directories {', '.join(empty)} hold" if empty else f"{root} holds"
        raise DemixganError(
            f"{where} no *.png or *.npy images, so the folder source {root} has nothing to "
            f"load; put grayscale PNGs or .npy arrays directly in {root}, or in one "
            f"subdirectory per class."
        )
    return layout


def _image_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix.lower() in (".png", ".npy") and not p.name.startswith(".") and p.is_file()
    )


def _folder_class_names(root: Path) -> tuple[str, ...]:
    return tuple(name for name, _ in _folder_layout(root))


def _folder_split(root: Path, split: str) -> _Arrays:
    """One split of a folder source, cached by file names, sizes and modification times."""
    layout = _folder_layout(root)
    key = tuple((name, tuple((p, *_stamp(p)) for p in files)) for name, files in layout)
    return _folder_split_cached(key, split)


@functools.lru_cache(maxsize=4)
def _folder_split_cached(key, split: str) -> _Arrays:
    return _split(_read_folder(key), split)


def _read_folder(key) -> _Arrays:
    """All images of a folder layout as float32 [N, H, W] with their class labels."""
    chunks, labels = [], []
    first: tuple[Path, tuple[int, int]] | None = None
    for label, (_, files) in enumerate(key):
        for path, *_ in files:
            stack = _read_image_file(path)
            first = first or (path, stack.shape[1:])
            if stack.shape[1:] != first[1]:
                raise DemixganError(
                    f"The image {path} is {_size(stack.shape[1:])} but {first[0]} (the first "
                    f"file) is {_size(first[1])}; all images of a folder source must have the "
                    f"same size. Resize or remove {path}."
                )
            chunks.append(stack)
            labels.append(np.full(stack.shape[0], label, dtype=np.int64))
    return np.concatenate(chunks), np.concatenate(labels)


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]} (height x width)"


def _read_image_file(path: Path) -> np.ndarray:
    """One file as float32 [n, H, W] in [0, 1]."""
    stack = read_png(path) if path.suffix.lower() == ".png" else _read_npy(path)
    if path.suffix.lower() == ".png" and stack.shape[0] != 1:
        raise DemixganError(
            f"The image {path} has mode RGB, but the folder source holds grey images of a class; "
            f"convert it, e.g. with Pillow: Image.open(path).convert('L').save(path)."
        )
    if stack.shape[0] == 0 or 0 in stack.shape[1:]:
        raise DemixganError(
            f"The array file {path} has shape {stack.shape} and holds no image; remove it."
        )
    return stack


def _read_npy(path: Path) -> np.ndarray:
    array = read_npy(path)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DemixganError(
            f"The array file {path} has shape {array.shape}; the folder source expects [H, W], "
            f"[N, H, W] or [N, 1, H, W]. Reshape it."
        )
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    return _checked_float(array, path)


def _checked_float(array: np.ndarray, path: Path) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.floating):
        raise DemixganError(
            f"The array file {path} has dtype {array.dtype}; the folder source expects uint8 "
            f"(0..255) or floats in [0, 1]. Convert it."
        )
    bad = np.size(array) - np.count_nonzero(np.isfinite(array))
    if bad:
        raise DemixganError(
            f"The array file {path} contains {bad} NaN or infinite values; the folder source "
            f"needs finite values in [0, 1]. Fix or remove it."
        )
    if array.size and (array.min() < 0 or array.max() > 1):
        raise DemixganError(
            f"The array file {path} has values in [{array.min():g}, {array.max():g}], outside "
            f"[0, 1]; rescale it (e.g. divide by its maximum) or save it as uint8."
        )
    return array.astype(np.float32)


def _describe_folder(data_dir, split: str) -> dict:
    if data_dir is None:
        return _absent("no directory given (pass --data-dir DIR)")
    root = _folder_root(data_dir)
    try:
        names = _folder_class_names(root)
    except DemixganError as exc:
        return _absent(str(exc))
    try:
        _, labels = _folder_split(root, split)
    except DemixganError as exc:
        return {**_absent(str(exc)), "path": str(root), "checksum": "mismatch"}
    return {
        "path": str(root),
        "count": int(labels.shape[0]),
        "class_counts": _class_counts(labels, len(names)),
        "checksum": "unverified",
        "detail": "user images have no reference checksum",
        "files": [],
    }
