"""IDX reading: real MNIST files (raw and gzip) and malformed files that must name themselves."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from demixgan.data.idx import read_idx
from demixgan.errors import DemixganError


def test_reads_real_mnist_gz_and_raw_identically(shared_mnist_dir: Path, tmp_path: Path):
    gz = shared_mnist_dir / "t10k-images-idx3-ubyte.gz"
    raw = tmp_path / "t10k-images-idx3-ubyte"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    from_gz, from_raw = read_idx(gz), read_idx(raw)
    assert from_gz.shape == (10000, 28, 28) and from_gz.dtype == np.uint8
    np.testing.assert_array_equal(from_gz, from_raw)
    assert from_gz.mean() == pytest.approx(33.79, abs=0.01)


def test_real_mnist_labels(shared_mnist_dir: Path):
    labels = read_idx(shared_mnist_dir / "t10k-labels-idx1-ubyte.gz")
    counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(labels).tolist() == counts


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
def test_roundtrip_of_every_idx_type(tmp_path: Path, write_idx, dtype: str):
    array = np.arange(24).reshape(2, 3, 4).astype(np.dtype(dtype).newbyteorder("="))
    out = read_idx(write_idx(tmp_path / "x.idx.gz", array))
    assert out.dtype.isnative and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)


def test_gzip_is_detected_by_content_not_name(tmp_path: Path, write_idx):
    path = write_idx(tmp_path / "a.gz", np.ones((2, 2), np.uint8))
    renamed = path.rename(tmp_path / "labels-idx1-ubyte")
    assert read_idx(renamed).sum() == 4


def _error(path: Path) -> str:
    with pytest.raises(DemixganError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_bad_magic_names_the_file(tmp_path: Path):
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 12)
    assert "magic number is 12340801" in _error(path)


def test_unknown_type_code(tmp_path: Path):
    path = tmp_path / "bad-type"
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    assert "not an IDX file" in _error(path)


def test_truncated_raw_file(tmp_path: Path, write_idx):
    path = write_idx(tmp_path / "cut", np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    message = _error(path)
    assert "(10, 28, 28)" in message and "truncated" in message


def test_trailing_bytes_are_rejected(tmp_path: Path, write_idx):
    path = write_idx(tmp_path / "long", np.zeros((3,), np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    assert "wrong size" in _error(path)


def test_truncated_header(tmp_path: Path):
    path = tmp_path / "short-header"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    assert "declares 3 dimensions" in _error(path)


def test_zero_dimensions(tmp_path: Path):
    path = tmp_path / "zero-dims"
    path.write_bytes(b"\x00\x00\x08\x00")
    assert "zero dimensions" in _error(path)


def test_cut_gzip(shared_mnist_dir: Path, tmp_path: Path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes((shared_mnist_dir / path.name).read_bytes()[:2000])
    assert "not a valid gzip file" in _error(path)


def test_missing_file(tmp_path: Path):
    assert "Cannot read" in _error(tmp_path / "nothing-here")
