"""Shared fixtures: real development data paths (skipped when absent) and an isolated data
environment, so that no test reads or writes the real cache or reaches the network."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# Fuzz tests (Hypothesis): few, derandomized examples in CI; DEMIXGAN_FUZZ=long for many more.
settings.register_profile("ci", max_examples=12, derandomize=True, deadline=None, database=None)
settings.register_profile("long", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("DEMIXGAN_FUZZ", "ci"))

REPO = Path(__file__).resolve().parents[1]
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _require(directory: Path, names: tuple[str, ...], why: str) -> Path:
    if not all((directory / name).is_file() for name in names):
        pytest.skip(f"{why} not found in {directory}")
    return directory


@pytest.fixture(scope="session")
def shared_mnist_dir() -> Path:
    """The real MNIST test set in ../shared/data/mnist (relative to the repository)."""
    return _require(REPO.parent / "shared" / "data" / "mnist", MNIST_TEST_FILES, "MNIST test set")


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """Fashion-MNIST as installed by Debian's dataset-fashion-mnist package."""
    names = tuple(
        f"{p}-{k}-idx{d}-ubyte.gz"
        for p in ("train", "t10k")
        for k, d in (("images", 3), ("labels", 1))
    )
    return _require(FASHION_DIR, names, "Debian's dataset-fashion-mnist files")


@pytest.fixture
def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def isolated_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_port_url: str):
    """Cache in tmp_path, no DEMIXGAN_DATA, mirrors on a closed local port; returns the cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEMIXGAN_CACHE", str(cache))
    monkeypatch.setenv("DEMIXGAN_MIRRORS", closed_port_url)
    for name in ("DEMIXGAN_DATA", "DEMIXGAN_DOWNLOAD_TIMEOUT", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return cache


def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` in the IDX format (the inverse of demixgan.data.idx.parse_idx)."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    big = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, codes[array.dtype.str[1:]], array.ndim])
    return header + np.array(array.shape, ">u4").tobytes() + big.tobytes()


@pytest.fixture
def write_idx():
    """``write_idx(path, array)``: an IDX file, gzip-compressed when the name ends in .gz."""

    def write(path: Path, array: np.ndarray) -> Path:
        data = _idx_bytes(array)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
        return path

    return write


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """Small real runs trained once per session: a denoising-GAN and a demixing-GAN (seconds)."""
    from demixgan.spec.config import load_config
    from demixgan.training.loop import train

    root = tmp_path_factory.mktemp("tiny-runs")
    tiny = ["train.max_steps=40", "train.checkpoint_every=40"]
    denoise = load_config(
        REPO / "configs/tiny-demix.toml",
        [
            *tiny,
            "components.sines.kind=known",
            "components.sines.family=sines",
            "components.sines.level=1",
        ],
    )
    return {
        "demix": train(
            load_config(REPO / "configs/tiny-demix.toml", tiny), root / "demix", progress=False
        ).run_dir,
        "denoise": train(denoise, root / "denoise", progress=False).run_dir,
    }


@pytest.fixture(scope="session")
def kill_at_rename() -> str:
    """The reliability sweep's ``python -c`` script (tools/sweep/kills.py): ``demixgan ARGS``
    SIGKILLed instead of the rename whose destination is argv[1], a kill in the middle of a
    checkpoint write; the tests and the sweep kill the same way."""
    import sys

    sys.path.insert(0, str(REPO / "tools" / "sweep"))
    from kills import KILL_AT_RENAME

    return KILL_AT_RENAME


@pytest.fixture
def quick_choice(monkeypatch):
    """A `demixgan separator` run in this process chooses its run's default method on 16
    validation mixtures instead of 500 (seconds instead of a quarter minute): for the tests of
    anything but that choice, which test_fast_path tests at its size."""
    from demixgan.training import separator_runs

    budget = separator_runs.ChoiceBudget
    monkeypatch.setattr(separator_runs, "ChoiceBudget", lambda: budget(mixtures=16))


@pytest.fixture
def one_thread():
    """One intra-op thread (bit-identical resumes need the same count throughout) and the
    global RNG restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        yield
    torch.set_num_threads(threads)


def blob_mixtures_of(image, n: int, seed: int = 0) -> np.ndarray:
    """Mixtures [n, C, H, W] in [0, 1] a user might have: a coloured blob plus grey curves
    (benchmarks/bench_sizes.py's, written once)."""
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_sizes import blob_mixtures

    return blob_mixtures(image, n, seed)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """A child process's exit code, stdout and stderr; a failure, not a hang, past ``timeout``."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not finish within {timeout} s:\n{err}")
    return proc.returncode, out, err
