"""Temp files that name their writer's PID, and removal of those whose writer has died.

A writer that is killed (SIGKILL, power loss, a SIGTERM nobody handles) cannot delete its
temp file, and a hidden ``.NAME.*.part`` or ``.NAME.*.tmp`` file would otherwise stay
forever. So writers name temp files ``.<final name>.pid<PID>.<random><suffix>`` (see
``temp_prefix``) and the next writer into the same directory deletes those whose process no
longer exists. A live process's file is never touched, so concurrent writers are safe. The
``pid`` marker keeps the names unambiguous: a final name that itself ends in digits (or an
older temp file without a PID) is never mistaken for one.

Limits: PIDs are only meaningful on one machine and in one PID namespace. A directory
shared between hosts or containers (NFS, a bind-mounted cache) could see another host's
live writer as dead; on Windows nothing is ever removed, because there ``os.kill(pid, 0)``
would terminate the process rather than probe it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def temp_prefix(final_name: str) -> str:
    """The prefix for a temp file of ``final_name`` written by this process (for mkstemp)."""
    return f".{final_name}.pid{os.getpid()}."


def make_temp(directory: str | os.PathLike, final_name: str, suffix: str) -> Path:
    """Create an empty temp file for ``final_name`` in ``directory`` that names this PID."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=temp_prefix(final_name), suffix=suffix)
    os.close(fd)
    return Path(name)


def make_temp_dir(directory: str | os.PathLike, final_name: str, suffix: str) -> Path:
    """Create a temp directory for ``final_name`` in ``directory`` (a staged output)."""
    return Path(tempfile.mkdtemp(dir=directory, prefix=temp_prefix(final_name), suffix=suffix))


def _pattern(suffix: str) -> re.Pattern[str]:
    # mkstemp's random part has no dots, so the PID is the segment just before it.
    return re.compile(rf"\..+\.pid([0-9]{{1,10}})\.[^.]+{re.escape(suffix)}")


def temp_pid(name: str, suffix: str) -> int | None:
    """The writer's PID recorded in temp file name ``name``, or None if it records none."""
    match = _pattern(suffix).fullmatch(name)
    return int(match[1]) if match else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists; anything uncertain counts as alive (never delete)."""
    if pid <= 0 or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: it exists, as another user's
        return True
    return True


def remove_stale_temps(directory: str | os.PathLike, suffix: str) -> list[Path]:
    """Delete the temp files (and staged directories) in ``directory`` ending in ``suffix``
    (e.g. ".part", ".tmp", ".partial")
    whose writer process is gone; returns what was removed. Never raises for a missing or
    unreadable directory or a file that cannot be removed: cleanup must not block a write."""
    pattern = _pattern(suffix)
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or pid_alive(int(match[1])):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)  # a staged output of a killed writer
            else:
                entry.unlink()
        except OSError:  # already gone, or not ours to delete
            continue
        log.info("removed %s, left behind by process %s that no longer runs", entry, match[1])
        removed.append(entry)
    return removed
