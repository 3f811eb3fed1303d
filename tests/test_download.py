"""Downloads for real, over HTTP from a local server that serves the real MNIST test files
intact, corrupted, truncated, cut, slowly, trickling, as gzip bombs or not at all; and the
cleanup of what killed downloads leave behind."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from demixgan.data import download, idx
from demixgan.data.catalog import MNIST
from demixgan.data.download import DownloadError, download_files
from demixgan.data.idx import read_idx
from demixgan.data.sources import describe_sources, load_images
from demixgan.errors import DemixganError
from demixgan.io import stale

pytestmark = pytest.mark.usefixtures("isolated_data_env")
TEST_FILES = MNIST.split_files("test")
BEHAVIOURS = ("good", "corrupt", "tampered", "truncated", "cut", "slow", "trickle", "trickle-head")
BOMBS = ("bomb-zeros", "bomb-declared", "bomb-huge")
TRICKLE_SECONDS = 0.2  # between two bytes; the socket timeout never fires
MiB = 1 << 20


@pytest.fixture(autouse=True)
def _default_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMIXGAN_DOWNLOAD_DEADLINE", raising=False)


class _Handler(BaseHTTPRequestHandler):
    """``/<behaviour>/<file name>``; unknown behaviours and files get a 404."""

    server: _Server

    def do_GET(self) -> None:
        behaviour, _, name = self.path.strip("/").partition("/")
        self.server.requests.append(self.path)
        data = self.server.payloads.get(name)
        if behaviour in BOMBS:  # served under any name
            data = self.server.bombs[behaviour]
        elif data is None or behaviour not in BEHAVIOURS:
            self.send_error(404)
            return
        if behaviour.startswith("trickle"):
            self._trickle(data, headers=behaviour == "trickle-head")
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

    def _trickle(self, data: bytes, headers: bool) -> None:
        """One byte every TRICKLE_SECONDS (of the status line, or of the body), for at most
        10 s; a client that gives up ends it."""
        head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        slow = head if headers else data
        try:
            if not headers:
                self.wfile.write(head)
            for i in range(min(len(slow), int(10 / TRICKLE_SECONDS))):
                self.wfile.write(slow[i : i + 1])
                self.wfile.flush()
                time.sleep(TRICKLE_SECONDS)
        except OSError:
            pass
        self.close_connection = True

    def log_message(self, *args) -> None:
        """Keep the test output clean."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    payloads: dict[str, bytes]
    bombs: dict[str, bytes]
    requests: list[str]


@pytest.fixture(scope="module")
def server(shared_mnist_dir: Path) -> Iterator[_Server]:
    """Serves the real MNIST test .gz files on 127.0.0.1 (an ephemeral port)."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.payloads = {e.gz_name: (shared_mnist_dir / e.gz_name).read_bytes() for e in TEST_FILES}
    httpd.requests = []
    httpd.bombs = {}
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
    def interrupt(entry, tmp, archive_sha):
        assert tmp.exists() and tmp.name.startswith(".t10k")
        assert f".pid{os.getpid()}." in tmp.name
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


# -- gzip bombs: bounded decompression, for downloads and local files --------------------------


def _zeros_gzip(total: int, member: int = 64 * MiB) -> bytes:
    """Concatenated gzip members of zeros that decompress to ``total`` bytes (~1 KB per MiB),
    built without ever holding the uncompressed bytes."""
    block, compressor = bytes(MiB), zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    one = b"".join(compressor.compress(block) for _ in range(member // MiB)) + compressor.flush()
    return one * (total // member)


def _idx_header(shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + np.array(shape, ">u4").tobytes()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """~1 MB gzips that decompress to 1 GiB: zeros (not IDX content); an IDX header declaring
    10,000 images, then zeros far beyond them; a header declaring 1 TiB."""
    zeros = _zeros_gzip(1 << 30)
    return {
        "bomb-zeros": zeros,
        "bomb-declared": gzip.compress(_idx_header((10000, 28, 28))) + zeros,
        "bomb-huge": gzip.compress(_idx_header((1 << 20, 1 << 10, 1 << 10))) + zeros,
    }


HUGE = 16 + (1 << 40)  # what bomb-huge's header declares: 1 TiB of pixels and the header
BOMB_REASONS = {
    "bomb-zeros": "not an IDX file once decompressed (it starts with 00000000)",
    "bomb-declared": "decompresses to more than the 7840016 bytes its header declares",
    "bomb-huge": (
        f"declares {HUGE} bytes in its header, more than the {download.MAX_DOWNLOAD_BYTES} "
        f"bytes accepted"
    ),
}


def _peak_bytes(work) -> tuple[float, object]:
    """Seconds and peak traced Python memory of ``work()`` (numpy and zlib buffers included)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        try:
            result = work()
        except Exception as exc:  # returned, to be asserted on
            result = exc
        return time.perf_counter() - start, (tracemalloc.get_traced_memory()[1], result)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("bomb", BOMBS)
def test_gzip_bomb_download_is_refused_with_bounded_memory(
    server, bombs, bomb: str, tmp_path: Path
):
    assert len(bombs[bomb]) < 1.1 * MiB
    server.bombs = bombs
    seconds, (peak, error) = _peak_bytes(
        lambda: download_files(MNIST, TEST_FILES[:1], tmp_path, mirrors=[url(server, bomb)])
    )
    assert isinstance(error, DownloadError), error
    [attempt] = error.attempts
    assert attempt.reason == BOMB_REASONS[bomb]
    assert peak < 32 * MiB and seconds < 3  # was 2.3 GB: the whole GiB, decompressed, twice
    assert list(tmp_path.iterdir()) == []


def test_wrong_archive_hash_is_refused_before_decompression(
    server, bombs, monkeypatch, tmp_path: Path
):
    """The training labels have only an archive hash: a mismatch settles it undecompressed."""
    entry = MNIST.file("train", "labels")
    assert entry.archive_sha256 and not entry.content_sha256

    def no_decompression(*args, **kwargs):
        raise AssertionError("decompressed a file whose archive hash already failed")

    monkeypatch.setattr(idx, "gunzip", no_decompression)
    server.bombs = bombs
    with pytest.raises(DownloadError) as info:
        download_files(MNIST, [entry], tmp_path, mirrors=[url(server, "bomb-declared")])
    got = hashlib.sha256(bombs["bomb-declared"]).hexdigest()
    [attempt] = info.value.attempts
    assert attempt.reason.startswith(f"checksum mismatch (got archive sha256 {got}; expected")
    assert attempt.reason.endswith("not decompressed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("bomb", "message"),
    [
        ("bomb-zeros", "is not an IDX file: its magic number is 00000000"),
        ("bomb-declared", "decompresses to more than the 7840016 bytes its header declares"),
        ("bomb-huge", f"declares {HUGE} bytes in its header, more than the {idx.MAX_IDX_BYTES}"),
    ],
)
def test_local_gzip_bomb_is_a_clear_error_not_a_memory_error(
    bombs, bomb: str, message: str, tmp_path: Path
):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(bombs[bomb])
    seconds, (peak, error) = _peak_bytes(lambda: read_idx(path))
    assert isinstance(error, DemixganError), error
    assert message in str(error) and str(path) in str(error)
    assert peak < 32 * MiB and seconds < 3


def test_local_multi_member_gzip_reads_as_gzip_does(tmp_path: Path, write_idx):
    data = write_idx(tmp_path / "raw", np.arange(6000, dtype=np.uint8).reshape(60, 100) % 7)
    raw = data.read_bytes()
    members = gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]) + b"\0" * 10
    assert gzip.decompress(members) == raw
    (tmp_path / "two.gz").write_bytes(members)
    np.testing.assert_array_equal(read_idx(tmp_path / "two.gz"), read_idx(data))
    (tmp_path / "junk.gz").write_bytes(members + b"junk")
    with pytest.raises(DemixganError, match="not a valid gzip file"):
        read_idx(tmp_path / "junk.gz")


# -- the overall deadline -----------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["trickle", "trickle-head"])
def test_trickling_server_fails_within_the_deadline(
    server, monkeypatch, behaviour: str, tmp_path: Path
):
    monkeypatch.setenv("DEMIXGAN_DOWNLOAD_DEADLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DownloadError) as info:
        download_files(MNIST, TEST_FILES, tmp_path, mirrors=[url(server, behaviour)])
    assert time.perf_counter() - start < 2
    assert [a.reason for a in info.value.attempts] == [
        "exceeded the overall deadline of 1 s",
        "skipped: the mirror was unreachable before",
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
def test_bad_deadline_setting(monkeypatch, value: str):
    monkeypatch.setenv("DEMIXGAN_DOWNLOAD_DEADLINE", value)
    with pytest.raises(DemixganError, match=r"DEMIXGAN_DOWNLOAD_DEADLINE=.* positive number"):
        load_images("mnist", "test")


# -- temp files of dead processes ---------------------------------------------------------------


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_part_files_of_dead_processes_are_removed_live_ones_kept(server, tmp_path: Path):
    dead, live = _dead_pid(), os.getpid()
    names = {
        "dead": f".t10k-images-idx3-ubyte.pid{dead}.abcd1234.part",
        "live": f".t10k-images-idx3-ubyte.pid{live}.efgh5678.part",
        "no pid": ".t10k-images-idx3-ubyte.ijkl9012.part",
        "not a part": f".t10k-images-idx3-ubyte.pid{dead}.mnop3456.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    download_files(MNIST, TEST_FILES[1:], tmp_path, mirrors=[url(server, "good")])
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"t10k-labels-idx1-ubyte.gz"} | (set(names.values()) - {names["dead"]})


def test_stale_temps_of_atomic_writes_and_checkpoints(tmp_path: Path):
    """The naming that ``stale`` defines also fits atomic_path's ``.tmp`` files and the
    checkpoint writer's pattern for them."""
    from demixgan.io.checkpoints import _TEMP_NAME

    dead = _dead_pid()
    mine = stale.make_temp(tmp_path, "step-000000040.safetensors", ".tmp")
    assert mine.name.startswith(f".step-000000040.safetensors.pid{os.getpid()}.")
    theirs = tmp_path / mine.name.replace(f".pid{os.getpid()}.", f".pid{dead}.")
    theirs.write_bytes(b"")
    assert _TEMP_NAME.fullmatch(mine.name) and _TEMP_NAME.fullmatch(theirs.name)
    assert stale.temp_pid(theirs.name, ".tmp") == dead
    assert stale.temp_pid(".model.2.abcd1234.tmp", ".tmp") is None  # no PID recorded
    assert stale.remove_stale_temps(tmp_path, ".part") == []
    assert stale.remove_stale_temps(tmp_path, ".tmp") == [theirs]
    assert sorted(tmp_path.iterdir()) == [mine]
    assert stale.remove_stale_temps(tmp_path / "missing", ".tmp") == []


_DOWNLOAD_SCRIPT = """
import sys
from demixgan.data.catalog import MNIST
from demixgan.data.download import download_files
download_files(MNIST, MNIST.split_files("test")[1:], sys.argv[1], mirrors=[sys.argv[2]])
"""


def _download_in_subprocess(server, dest: Path) -> subprocess.Popen:
    """A download from the trickling server in another process, once it is mid-transfer."""
    server.requests.clear()
    process = subprocess.Popen(
        [sys.executable, "-c", _DOWNLOAD_SCRIPT, str(dest), url(server, "trickle")]
    )
    deadline = time.monotonic() + 10
    while not server.requests and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(2 * TRICKLE_SECONDS)  # a few bytes in
    assert process.poll() is None and server.requests
    return process


def test_sigkilled_download_leaves_a_part_that_the_next_one_removes(server, tmp_path: Path):
    process = _download_in_subprocess(server, tmp_path)
    process.kill()
    assert process.wait() == -signal.SIGKILL
    [part] = tmp_path.iterdir()
    assert part.name.startswith(f".t10k-labels-idx1-ubyte.pid{process.pid}.")
    assert part.name.endswith(".part")
    download_files(MNIST, TEST_FILES[1:], tmp_path, mirrors=[url(server, "good")])
    assert [p.name for p in tmp_path.iterdir()] == ["t10k-labels-idx1-ubyte.gz"]


def test_sigterm_during_download_removes_the_part(server, tmp_path: Path):
    process = _download_in_subprocess(server, tmp_path)
    process.terminate()
    assert process.wait(timeout=5) == -signal.SIGTERM  # still dies of the signal
    assert list(tmp_path.iterdir()) == []
