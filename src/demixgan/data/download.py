"""Atomic, verified downloads of catalog files into the user cache.

Each file is streamed into a hidden ``.NAME.*.part`` file in the destination directory,
checked (full length received, gzip intact, catalog hash matched), and only then renamed into
place with ``os.replace``; the temporary file is deleted on every failure path, interrupts
included. So an interrupted, truncated, corrupted or missing download never leaves a file
that looks valid. A download must be *verified*: a hash mismatch on one mirror moves on to the
next one. A mirror that cannot be reached at all is not retried for the remaining files of
the same call, so an offline machine fails fast.

Environment: ``DEMIXGAN_CACHE`` overrides the cache root (else ``$XDG_CACHE_HOME/demixgan``
or ``~/.cache/demixgan``), ``DEMIXGAN_MIRRORS`` (comma-separated base URLs) replaces the
catalog mirrors, ``DEMIXGAN_DOWNLOAD_TIMEOUT`` (seconds) replaces the 30 s socket timeout.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from demixgan import __version__
from demixgan.data import idx
from demixgan.data.catalog import Dataset, IdxFile, verify
from demixgan.errors import DemixganError

CACHE_ENV = "DEMIXGAN_CACHE"
MIRRORS_ENV = "DEMIXGAN_MIRRORS"
TIMEOUT_ENV = "DEMIXGAN_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
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
    if timeout is not None:
        return timeout
    value = os.environ.get(TIMEOUT_ENV)
    if not value:
        return DEFAULT_TIMEOUT
    try:
        return float(value)
    except ValueError:
        raise DemixganError(
            f"{TIMEOUT_ENV}={value!r} is not a number; set it to a timeout in seconds "
            f"(e.g. 30) or unset it."
        ) from None


def download_files(
    dataset: Dataset,
    files: Sequence[IdxFile],
    dest_dir: str | os.PathLike | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    timeout: float | None = None,
) -> list[Path]:
    """Download and verify ``files`` into ``dest_dir`` (default: the dataset's cache dir).

    Returns the final paths; raises DownloadError naming every file that no mirror provided.
    """
    dest = Path(dest_dir) if dest_dir is not None else dataset_cache_dir(dataset.name)
    bases = resolve_mirrors(dataset, mirrors)
    seconds = resolve_timeout(timeout)
    unreachable: set[str] = set()
    attempts: list[Attempt] = []
    paths, missing = [], []
    for entry in files:
        path = _download_one(entry, dest, bases, seconds, unreachable, attempts)
        if path is None:
            missing.append(entry)
        else:
            paths.append(path)
    if missing:
        raise DownloadError(_message(dataset, missing, dest, attempts), missing, attempts)
    return paths


def _temp_path(dest: Path, entry: IdxFile) -> Path:
    """A fresh hidden ``.NAME.*.part`` file in ``dest`` (created with its parents)."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest, prefix=f".{entry.name}.", suffix=".part")
        os.close(fd)
        return Path(name)
    except OSError as exc:
        raise DemixganError(
            f"Cannot create the download directory {dest} ({exc}). Set {CACHE_ENV} to a "
            f"writable directory, or provide the data files yourself with --data-dir."
        ) from exc


def _download_one(
    entry: IdxFile,
    dest: Path,
    bases: Sequence[str],
    timeout: float,
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
                _fetch(url, tmp, timeout)
                final = dest / _check(entry, tmp)
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


def _fetch(url: str, tmp: Path, timeout: float) -> None:
    """Stream ``url`` into ``tmp``, insisting on the full Content-Length."""
    request = urllib.request.Request(url, headers={"User-Agent": f"demixgan/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, tmp.open("wb") as out:
            expected = response.headers.get("Content-Length")
            received = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
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
    if expected is not None and expected.isdigit() and received != int(expected):
        raise _Failed(f"truncated: received {received} of {expected} bytes")


def _check(entry: IdxFile, tmp: Path) -> str:
    """Verify a finished download; returns the file name to store it under."""
    raw = tmp.read_bytes()
    try:
        content = idx.decompress(raw, tmp)
    except DemixganError as exc:
        raise _Failed(f"not a valid gzip file ({exc.__cause__})") from exc
    archive_sha = hashlib.sha256(raw).hexdigest()
    content_sha = hashlib.sha256(content).hexdigest()
    if verify(entry, archive_sha, content_sha) != "verified":
        raise _Failed(
            f"checksum mismatch (got archive sha256 {archive_sha}, content sha256 "
            f"{content_sha}; expected {entry.expected_hashes})"
        )
    return entry.gz_name if idx.is_gzip(raw) else entry.name


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
