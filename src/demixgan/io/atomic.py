"""Atomic file writes: a reader sees the old file or the complete new one, never a half."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from demixgan.errors import DemixganError
from demixgan.io.stale import make_temp, remove_stale_temps


def check_writable_dir(directory: str | os.PathLike, what: str = "output") -> Path:
    """Create ``directory`` if needed and make sure files can be written there, before any work."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise DemixganError(
            f"Cannot write the {what} to '{path}': {exc.strerror or exc}. Choose a directory you "
            "can write to (check that the path exists or can be created and that you have "
            "permission), then run the command again."
        ) from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(destination: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place only on success.

    On any exception the temporary file is removed, so an interrupted write never leaves a
    file that looks complete; one left by a killed process is removed by the next write
    into the directory.
    """
    dest = Path(destination)
    directory = check_writable_dir(dest.parent if str(dest.parent) else ".")
    remove_stale_temps(directory, ".tmp")  # those of killed writers (they name their PID)
    tmp = make_temp(directory, dest.name, ".tmp")
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
