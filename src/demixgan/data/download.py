"""Atomic, verified downloads of catalog files into the user cache.

Each file is streamed into a hidden ``.NAME.pidPID.*.part`` file in the destination
directory, checked (full length received, gzip intact, catalog hash matched), and only then
renamed into place with ``os.replace``; the temporary file is deleted on every failure path,
interrupts included. So an interrupted, truncated, corrupted or missing download never leaves
a file that looks valid. A download must be *verified*: a hash mismatch on one mirror moves on
to the next one. A mirror that cannot be reached at all (or only too slowly) is not retried for
the remaining files of the same call, so an offline machine fails fast.

Hostile or broken mirrors are bounded too. The archive's SHA-256 is computed while it
streams; when the catalog knows only the archive hash and it differs, the file is refused
without being decompressed. Otherwise decompression is streamed and stops as soon as the
content is not an IDX file, exceeds the size its IDX header declares, or exceeds
``MAX_DOWNLOAD_BYTES`` (256 MiB, over 5 times the largest catalog file, 47 MB), which also
caps the archive itself: a gzip bomb costs neither memory nor much time. Each attempt has an
overall deadline, because the socket timeout restarts with every byte a trickling server
sends. The ``.part`` name records the writer's PID, so a download killed outright (SIGKILL)
leaves a file that the next download into that directory removes; a SIGTERM during a
download removes the ``.part`` before the process dies of it (when SIGTERM has its default
handling and the download runs in the main thread).

Environment: ``DEMIXGAN_CACHE`` overrides the cache root (else ``$XDG_CACHE_HOME/demixgan``
or ``~/.cache/demixgan``), ``DEMIXGAN_MIRRORS`` (comma-separated base URLs) replaces the
catalog mirrors, ``DEMIXGAN_DOWNLOAD_TIMEOUT`` (seconds) replaces the 30 s socket timeout and
``DEMIXGAN_DOWNLOAD_DEADLINE`` (seconds) the 600 s overall deadline per file and mirror.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import math
import os
import signal
import socket
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from demixgan import __version__
from demixgan.data import idx
from demixgan.data.catalog import Dataset, IdxFile, verify
from demixgan.errors import DemixganError
from demixgan.io.stale import make_temp, remove_stale_temps

CACHE_ENV = "DEMIXGAN_CACHE"
MIRRORS_ENV = "DEMIXGAN_MIRRORS"
TIMEOUT_ENV = "DEMIXGAN_DOWNLOAD_TIMEOUT"
DEADLINE_ENV = "DEMIXGAN_DOWNLOAD_DEADLINE"
DEFAULT_TIMEOUT = 30.0
DEFAULT_DEADLINE = 600.0
#: Most bytes accepted per file, compressed or not: the largest catalog file is 47 MB.
MAX_DOWNLOAD_BYTES = 256 << 20
PART_SUFFIX = ".part"
_CHUNK = 1 << 16
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """One failed try of one URL, kept to explain the final error."""

    url: str
    reason: str


class DownloadError(DemixganError):
    """Some files could not be downloaded from any mirror; carries what was tried."""

    def __init__(self, message: str, missing: Sequence[IdxFile], attempts: Sequence[Attempt]):
        super().__init__(message)
        self.missing = tuple(missing)
        self.attempts = tuple(attempts)


class _Failed(Exception):
    """A single URL failed; ``unreachable`` means the host itself could not be talked to."""

    def __init__(self, reason: str, unreachable: bool = False):
        super().__init__(reason)
        self.unreachable = unreachable


def cache_root() -> Path:
    """Root of demixgan's cache: ``$DEMIXGAN_CACHE``, ``$XDG_CACHE_HOME/demixgan`` or
    ``~/.cache/demixgan``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "demixgan"


def dataset_cache_dir(source: str) -> Path:
    """Where downloads of ``source`` go (and are looked for)."""
    return cache_root() / source


def resolve_mirrors(dataset: Dataset, mirrors: Sequence[str] | None = None) -> tuple[str, ...]:
    """Mirrors to try, in order: the argument, then ``$DEMIXGAN_MIRRORS``, then the catalog."""
    if mirrors is None and os.environ.get(MIRRORS_ENV):
        mirrors = os.environ[MIRRORS_ENV].split(",")
    if mirrors is None:
        return dataset.mirrors
    return tuple(m.strip() for m in mirrors if m.strip())


def resolve_timeout(timeout: float | None = None) -> float:
    """Socket timeout in seconds: the argument, then ``$DEMIXGAN_DOWNLOAD_TIMEOUT``, then 30."""
    return _seconds(timeout, TIMEOUT_ENV, DEFAULT_TIMEOUT, "a timeout")


def resolve_deadline(deadline: float | None = None) -> float:
    """Overall seconds allowed per file and mirror: the argument, then
    ``$DEMIXGAN_DOWNLOAD_DEADLINE``, then 600."""
    return _seconds(deadline, DEADLINE_ENV, DEFAULT_DEADLINE, "an overall deadline")


def _seconds(value: float | None, env: str, default: float, what: str) -> float:
    if value is not None:
        return value
    text = os.environ.get(env)
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise DemixganError(
            f"{env}={text!r} is not a positive number of seconds; set it to {what} in "
            f"seconds (e.g. {default:g}) or unset it to use the default of {default:g} s."
        )
    return seconds


def download_files(
    dataset: Dataset,
    files: Sequence[IdxFile],
    dest_dir: str | os.PathLike | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
) -> list[Path]:
    """Download and verify ``files`` into ``dest_dir`` (default: the dataset's cache dir).

    Returns the final paths; raises DownloadError naming every file that no mirror provided.
    """
    dest = Path(dest_dir) if dest_dir is not None else dataset_cache_dir(dataset.name)
    bases = resolve_mirrors(dataset, mirrors)
    limits = _Limits(resolve_timeout(timeout), resolve_deadline(deadline))
    _prepare(dest)
    unreachable: set[str] = set()
    attempts: list[Attempt] = []
    paths, missing = [], []
    with _sigterm_removes_temps():
        for entry in files:
            path = _download_one(entry, dest, bases, limits, unreachable, attempts)
            if path is None:
                missing.append(entry)
            else:
                paths.append(path)
    if missing:
        raise DownloadError(_message(dataset, missing, dest, attempts), missing, attempts)
    return paths


@dataclass(frozen=True)
class _Limits:
    timeout: float  # seconds per socket operation
    deadline: float  # seconds per attempt (file and mirror), all of it


def _unusable_dir(dest: Path, exc: OSError) -> DemixganError:
    return DemixganError(
        f"Cannot create the download directory {dest} ({exc}). Set {CACHE_ENV} to a "
        f"writable directory, or provide the data files yourself with --data-dir."
    )


def _prepare(dest: Path) -> None:
    """Create ``dest`` and remove the ``.part`` files of downloads whose process has died."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unusable_dir(dest, exc) from exc
    for path in remove_stale_temps(dest, PART_SUFFIX):
        log.info("removed %s, left by an interrupted download", path)


def _temp_path(dest: Path, entry: IdxFile) -> Path:
    """A fresh hidden ``.NAME.pidPID.*.part`` file in ``dest``."""
    try:
        return make_temp(dest, entry.name, PART_SUFFIX)
    except OSError as exc:
        raise _unusable_dir(dest, exc) from exc


class _Terminated(BaseException):
    """SIGTERM arrived during a download (a BaseException, so that nothing swallows it)."""


@contextmanager
def _sigterm_removes_temps() -> Iterator[None]:
    """While downloading, turn SIGTERM into an exception so that the ``finally`` clauses
    delete the ``.part`` file, then die of SIGTERM exactly as without this. Only where
    SIGTERM has its default handling (a program's own handler is left alone) and in the main
    thread (the only one that may set handlers)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM) from None  # only if SIGTERM is blocked
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _download_one(
    entry: IdxFile,
    dest: Path,
    bases: Sequence[str],
    limits: _Limits,
    unreachable: set[str],
    attempts: list[Attempt],
) -> Path | None:
    """Try each mirror in turn; the first verified copy is moved into ``dest``."""
    tmp = _temp_path(dest, entry)
    try:
        for base in bases:
            url = base.rstrip("/") + "/" + entry.gz_name
            if base in unreachable:
                attempts.append(Attempt(url, "skipped: the mirror was unreachable before"))
                continue
            try:
                log.info("downloading %s", url)
                archive_sha = _fetch(url, tmp, limits)
                final = dest / _check(entry, tmp, archive_sha)
            except _Failed as exc:
                attempts.append(Attempt(url, str(exc)))
                if exc.unreachable:
                    unreachable.add(base)
                continue
            os.replace(tmp, final)
            return final
        return None
    finally:
        tmp.unlink(missing_ok=True)


class _Watchdog:
    """Ends an attempt at its deadline by shutting its sockets down, which wakes a blocked
    read at once (the socket timeout restarts with each byte a trickling server sends)."""

    def __init__(self, seconds: float):
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> socket.socket:
        """Called with each new connection's socket; returns it unchanged."""
        try:
            # A duplicate refers to the same connection and survives the TLS wrap, which
            # detaches ``sock`` before its handshake; shutting it down ends that too.
            duplicate = sock.dup()
        except OSError:
            return sock
        with self._lock:
            self._sockets.append(duplicate)
            if self.expired:
                _shutdown(duplicate)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    with suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """Mixin for urllib's HTTP(S) handlers: every connection's socket goes to the watchdog
    (proxies, tunnels and redirects included, as urllib handles them as usual)."""

    watchdog: _Watchdog

    def do_open(self, http_class: Callable, req: urllib.request.Request, **kwargs):
        watchdog = self.watchdog

        def connection(*args, **kw) -> http.client.HTTPConnection:
            conn = http_class(*args, **kw)
            create = conn._create_connection
            conn._create_connection = lambda *a, **k: watchdog.watch(create(*a, **k))
            return conn

        return super().do_open(connection, req, **kwargs)


class _WatchedHTTP(_Watched, urllib.request.HTTPHandler):
    pass


_HANDLERS: list[type] = [_WatchedHTTP]
if hasattr(urllib.request, "HTTPSHandler"):  # Python built with ssl

    class _WatchedHTTPS(_Watched, urllib.request.HTTPSHandler):
        pass

    _HANDLERS.append(_WatchedHTTPS)


def _fetch(url: str, tmp: Path, limits: _Limits) -> str:
    """Stream ``url`` into ``tmp`` within the limits; returns the archive's sha256."""
    watchdog = _Watchdog(limits.deadline)
    try:
        return _transfer(url, tmp, limits.timeout, watchdog)
    except _Failed:
        if watchdog.expired:
            raise _Failed(
                f"exceeded the overall deadline of {limits.deadline:g} s", unreachable=True
            ) from None
        raise
    finally:
        watchdog.close()


def _transfer(url: str, tmp: Path, timeout: float, watchdog: _Watchdog) -> str:
    """Stream ``url`` into ``tmp``, hashing it, insisting on the full Content-Length."""
    handlers = []
    for cls in _HANDLERS:
        handler = cls()
        handler.watchdog = watchdog
        handlers.append(handler)
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": f"demixgan/{__version__}"})
    digest = hashlib.sha256()
    try:
        with opener.open(request, timeout=timeout) as response, tmp.open("wb") as out:
            expected = response.headers.get("Content-Length")
            if expected is not None and expected.isdigit() and int(expected) > MAX_DOWNLOAD_BYTES:
                raise _Failed(f"too large: {expected} bytes, more than {MAX_DOWNLOAD_BYTES}")
            received = 0
            # read1 returns what has arrived, so the deadline is looked at between reads.
            while (chunk := response.read1(_CHUNK)) and not watchdog.expired:
                received += len(chunk)
                if received > MAX_DOWNLOAD_BYTES:
                    raise _Failed(f"too large: more than {MAX_DOWNLOAD_BYTES} bytes")
                out.write(chunk)
                digest.update(chunk)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise _Failed(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _Failed(f"unreachable ({exc.reason})", unreachable=True) from exc
    except TimeoutError as exc:
        raise _Failed(f"timed out after {timeout:g} s", unreachable=True) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Failed(f"transfer failed ({type(exc).__name__}: {exc})") from exc
    except ValueError as exc:
        raise _Failed(f"invalid URL ({exc})") from exc
    if watchdog.expired:
        raise _Failed("deadline")  # worded by _fetch
    if expected is not None and expected.isdigit() and received != int(expected):
        raise _Failed(f"truncated: received {received} of {expected} bytes")
    return digest.hexdigest()


def _check(entry: IdxFile, tmp: Path, archive_sha: str) -> str:
    """Verify a finished download whose sha256 is ``archive_sha``; returns the file name to
    store it under. Nothing is decompressed when the archive hash alone decides."""
    with tmp.open("rb") as file:
        gzipped = idx.is_gzip(file.read(2))
    if archive_sha == entry.archive_sha256:
        return entry.gz_name if gzipped else entry.name
    if not entry.content_sha256:  # only the (different) archive hash could have matched
        raise _Failed(
            f"checksum mismatch (got archive sha256 {archive_sha}; expected "
            f"{entry.expected_hashes}); not decompressed"
        )
    content_sha = _content_sha256(tmp, gzipped)
    if verify(entry, archive_sha, content_sha) != "verified":
        raise _Failed(
            f"checksum mismatch (got archive sha256 {archive_sha}, content sha256 "
            f"{content_sha}; expected {entry.expected_hashes})"
        )
    return entry.gz_name if gzipped else entry.name


def _content_sha256(tmp: Path, gzipped: bool) -> str:
    """SHA-256 of the uncompressed content, decompressed in pieces and bounded (idx.gunzip_idx)."""
    digest = hashlib.sha256()
    with tmp.open("rb") as file:
        pieces = iter(lambda: file.read(_CHUNK), b"")
        try:
            for piece in idx.gunzip_idx(pieces, MAX_DOWNLOAD_BYTES) if gzipped else pieces:
                digest.update(piece)
        except idx.TooLarge as exc:
            raise _Failed(exc.reason) from None
        except idx.NotIdx as exc:
            raise _Failed(f"not an IDX file once decompressed ({exc})") from None
        except (EOFError, zlib.error) as exc:
            raise _Failed(f"not a valid gzip file ({exc})") from exc
    return digest.hexdigest()


def describe_attempts(attempts: Sequence[Attempt]) -> str:
    """``url (reason); url (reason)`` for error messages."""
    return "; ".join(f"{a.url} ({a.reason})" for a in attempts) or "no mirror was configured"


def _message(
    dataset: Dataset, missing: Sequence[IdxFile], dest: Path, attempts: Sequence[Attempt]
) -> str:
    names = ", ".join(e.gz_name for e in missing)
    return (
        f"Could not download the {dataset.title} files {names} into {dest}. Tried: "
        f"{describe_attempts(attempts)}. Set {MIRRORS_ENV} to a reachable mirror, or copy the "
        f"files (raw or .gz) into {dest} yourself."
    )
