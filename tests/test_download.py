"""Downloads for real, over HTTP from a local server that serves the real MNIST test files
intact, corrupted, truncated, cut, slowly or not at all."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from demixgan.data import download
from demixgan.data.catalog import MNIST
from demixgan.data.download import DownloadError, download_files
from demixgan.data.sources import describe_sources, load_images
from demixgan.errors import DemixganError

pytestmark = pytest.mark.usefixtures("isolated_data_env")
TEST_FILES = MNIST.split_files("test")
BEHAVIOURS = ("good", "corrupt", "tampered", "truncated", "cut", "slow")


class _Handler(BaseHTTPRequestHandler):
    """``/<behaviour>/<file name>``; unknown behaviours and files get a 404."""

    server: _Server

    def do_GET(self) -> None:
        behaviour, _, name = self.path.strip("/").partition("/")
        self.server.requests.append(self.path)
        data = self.server.payloads.get(name)
        if data is None or behaviour not in BEHAVIOURS:
            self.send_error(404)
            return
        if behaviour == "slow":
            time.sleep(1.5)
        if behaviour == "corrupt":
            middle = len(data) // 2
            data = (
                data[:middle]
                + bytes(b ^ 0xFF for b in data[middle : middle + 64])
                + data[middle + 64 :]
            )
        if behaviour == "tampered":  # a well-formed gzip of a well-formed IDX with one pixel off
            content = bytearray(gzip.decompress(data))
            content[-1] ^= 0x01
            data = gzip.compress(bytes(content), compresslevel=1)
        if behaviour == "cut":
            data = data[: len(data) // 2]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if behaviour == "truncated" else data)

    def log_message(self, *args) -> None:
        """Keep the test output clean."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    payloads: dict[str, bytes]
    requests: list[str]


@pytest.fixture(scope="module")
def server(shared_mnist_dir: Path) -> Iterator[_Server]:
    """Serves the real MNIST test .gz files on 127.0.0.1 (an ephemeral port)."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.payloads = {e.gz_name: (shared_mnist_dir / e.gz_name).read_bytes() for e in TEST_FILES}
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server: _Server, behaviour: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{behaviour}/"


def use_mirrors(monkeypatch: pytest.MonkeyPatch, *mirrors: str) -> None:
    monkeypatch.setenv("DEMIXGAN_MIRRORS", ",".join(mirrors))


def failed_load(cache: Path) -> str:
    """Load the missing MNIST test split; it must fail and leave nothing in the cache."""
    with pytest.raises(DemixganError) as info:
        load_images("mnist", "test")
    leftovers = list((cache / "mnist").iterdir()) if (cache / "mnist").exists() else []
    assert leftovers == []
    return str(info.value)


def test_good_download_is_verified_and_loaded(server, monkeypatch, isolated_data_env: Path):
    use_mirrors(monkeypatch, url(server, "good"))
    data = load_images("mnist", "test", classes=[1, 2])
    assert len(data) == 1135 + 1032
    assert len(load_images("mnist", "test")) == 10000
    names = sorted(p.name for p in (isolated_data_env / "mnist").iterdir())
    assert names == sorted(e.gz_name for e in TEST_FILES)
    info = [d for d in describe_sources() if (d["source"], d["split"]) == ("mnist", "test")]
    assert info[0]["checksum"] == "verified" and info[0]["count"] == 10000


def test_corrupted_payload_leaves_nothing(server, monkeypatch, isolated_data_env: Path):
    use_mirrors(monkeypatch, url(server, "corrupt"))
    message = failed_load(isolated_data_env)
    assert url(server, "corrupt") + "t10k-images-idx3-ubyte.gz" in message
    assert "gzip" in message or "checksum mismatch" in message


def test_tampered_payload_fails_its_checksum(server, monkeypatch, isolated_data_env: Path):
    use_mirrors(monkeypatch, url(server, "tampered"))
    message = failed_load(isolated_data_env)
    assert "checksum mismatch" in message and TEST_FILES[0].content_sha256 in message


def test_unknown_class_fails_before_downloading(server, monkeypatch):
    use_mirrors(monkeypatch, url(server, "good"))
    server.requests.clear()
    with pytest.raises(DemixganError, match="eleven"):
        load_images("mnist", "test", classes=["eleven"])
    assert server.requests == []


def test_truncated_transfer_leaves_nothing(server, monkeypatch, isolated_data_env: Path):
    use_mirrors(monkeypatch, url(server, "truncated"))
    message = failed_load(isolated_data_env)
    assert "truncated" in message or "IncompleteRead" in message


def test_cut_gzip_leaves_nothing(server, monkeypatch, isolated_data_env: Path):
    use_mirrors(monkeypatch, url(server, "cut"))
    assert "not a valid gzip file" in failed_load(isolated_data_env)


def test_404_lists_files_dirs_and_mirror(server, monkeypatch, isolated_data_env: Path, tmp_path):
    monkeypatch.setenv("DEMIXGAN_DATA", str(tmp_path / "mine"))
    use_mirrors(monkeypatch, url(server, "gone"))
    message = failed_load(isolated_data_env)
    for part in (
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        str(tmp_path / "mine"),
        str(tmp_path / "mine" / "mnist"),
        str(isolated_data_env / "mnist"),
        url(server, "gone") + "t10k-labels-idx1-ubyte.gz (HTTP 404",
        "DEMIXGAN_DATA",
        "--data-dir",
    ):
        assert part in message


def test_falls_back_to_the_next_mirror(server, monkeypatch):
    use_mirrors(monkeypatch, url(server, "gone"), url(server, "corrupt"), url(server, "good"))
    server.requests.clear()
    assert len(load_images("mnist", "test")) == 10000
    assert server.requests == [
        f"/{behaviour}/{e.gz_name}" for e in TEST_FILES for behaviour in ("gone", "corrupt", "good")
    ]


def test_mirrors_argument_beats_environment(server, tmp_path: Path):
    paths = download_files(MNIST, TEST_FILES[1:], tmp_path, mirrors=[url(server, "good")])
    assert [p.name for p in paths] == ["t10k-labels-idx1-ubyte.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t10k-labels-idx1-ubyte.gz"]


def test_unreachable_mirrors_fail_fast(isolated_data_env: Path, closed_port_url: str):
    start = time.perf_counter()
    message = failed_load(isolated_data_env)
    assert time.perf_counter() - start < 5
    assert f"{closed_port_url}t10k-images-idx3-ubyte.gz (unreachable" in message
    assert "skipped: the mirror was unreachable before" in message


def test_default_mirrors_are_tried_when_not_overridden(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("DEMIXGAN_MIRRORS")
    assert download.resolve_mirrors(MNIST) == MNIST.mirrors
    assert MNIST.mirrors[0] == "https://storage.googleapis.com/cvdf-datasets/mnist/"


def test_slow_mirror_times_out(server, monkeypatch, isolated_data_env: Path):
    use_mirrors(monkeypatch, url(server, "slow"))
    monkeypatch.setenv("DEMIXGAN_DOWNLOAD_TIMEOUT", "0.2")
    start = time.perf_counter()
    message = failed_load(isolated_data_env)
    assert time.perf_counter() - start < 1.4
    assert "timed out after 0.2 s" in message


def test_unusable_cache_dir(monkeypatch, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DEMIXGAN_CACHE", str(blocker))
    with pytest.raises(DemixganError, match="Cannot create the download directory"):
        load_images("mnist", "test")


def test_bad_timeout_setting(monkeypatch):
    monkeypatch.setenv("DEMIXGAN_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(DemixganError, match="DEMIXGAN_DOWNLOAD_TIMEOUT"):
        load_images("mnist", "test")


def test_interrupted_download_leaves_nothing(server, monkeypatch, tmp_path: Path):
    def interrupt(entry, tmp):
        assert tmp.exists() and tmp.name.startswith(".t10k")
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "_check", interrupt)
    with pytest.raises(KeyboardInterrupt):
        download_files(MNIST, TEST_FILES, tmp_path, mirrors=[url(server, "good")])
    assert list(tmp_path.iterdir()) == []


def test_download_error_carries_attempts(server, tmp_path: Path):
    with pytest.raises(DownloadError) as info:
        download_files(MNIST, TEST_FILES, tmp_path, mirrors=[url(server, "gone")])
    assert info.value.missing == TEST_FILES
    assert [a.reason for a in info.value.attempts] == ["HTTP 404 Not Found"] * 2
    assert str(tmp_path) in str(info.value)


def test_cache_root_honours_xdg_and_home(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("DEMIXGAN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.dataset_cache_dir("mnist") == tmp_path / "xdg" / "demixgan" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert download.cache_root() == tmp_path / "home" / ".cache" / "demixgan"
