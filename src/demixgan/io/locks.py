"""One writer at a time per run or output directory, and readers that ride out a writer.

Two ``demixgan train --resume RUN`` at once would both append to ``stats.jsonl`` and both
rotate the checkpoints; two ``demix ... -o OUT`` at once would both rename a staging
directory onto OUT. Every writer therefore holds an exclusive ``filelock.FileLock`` (an
``flock``, which the kernel drops when the process dies, SIGKILL included) while it writes:

* a run directory (GAN, separator and classifier runs, written in place and resumed) is
  locked by ``RUN/.lock`` (:func:`run_lock`);
* an output that is staged and renamed into place (or a single file) is locked by
  ``.NAME.lock`` beside it (:func:`output_lock`), since the output itself does not exist yet.

The acquire never waits: a second writer gets one paragraph naming the holder's PID, which
the holder writes into the lock file. The lock file is removed on release, so a finished
command leaves only its output; after a SIGKILL it stays behind, unlocked and harmless (the
next writer takes it over). Removing an flock'ed file is safe only because every acquire
checks, holding the lock, that the inode it locked is still the one the path names (else a
waiter that opened the old file and a newcomer that created the new one would both hold "the"
lock); filelock's ``on_acquired`` runs that check. Locks are re-entrant within a process (the
CLI holds a run's lock around the engine, which takes it again).

Readers never lock (a reader must not wait hours behind a training run); instead
:func:`read_newest` retries a load whose checkpoint a writer rotated away underneath it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import filelock

from demixgan.errors import DemixganError
from demixgan.io.atomic import check_writable_dir
from demixgan.io.stale import pid_alive

if TYPE_CHECKING:  # checkpoints may import this module: no import cycle at run time
    from demixgan.io.checkpoints import Checkpoint

#: The lock file inside a run directory.
LOCK_NAME = ".lock"
_ATTEMPTS = 5  # acquire attempts while the lock file names no live holder (a release racing)
#: Seconds a reader keeps choosing the newest checkpoint again while a writer rotates them
#: under it: a deadline, not a count, since a loaded machine makes every attempt slow and
#: a few quick retries could all land on a rotation (a run saving every step, keep_last 1).
_READ_PATIENCE = 10.0
_RUN_RISK = "two writers would corrupt its checkpoints and log"
_OUTPUT_RISK = "two writers would overwrite each other's files"

T = TypeVar("T")


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as it wrote itself into the lock file."""

    pid: int
    host: str
    started: float
    command: str

    def describe(self) -> str:
        when = time.localtime(self.started)
        same_day = time.strftime("%Y-%m-%d", when) == time.strftime("%Y-%m-%d")
        started = time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", when)
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        command = f", '{self.command}'" if self.command else ""
        return f"PID {self.pid}{where}, started {started}{command}"

    def alive(self) -> bool:
        """Whether the process still runs (always assumed on another host: it cannot be probed)."""
        return self.host != socket.gethostname() or pid_alive(self.pid)


@dataclass
class _Hold:
    lock: filelock.BaseFileLock
    path: Path
    inode: tuple[int, int] | None
    count: int = 1


_HELD: dict[str, _Hold] = {}


@contextmanager
def run_lock(run_dir: str | os.PathLike, what: str = "run directory") -> Iterator[Path]:
    """Hold ``run_dir/.lock`` while the block writes the run (created if needed)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise DemixganError(
            f"The {what} '{run_dir}' is a file, not a directory, so no run can be written "
            "there. Choose a new directory, or move the file away."
        )
    check_writable_dir(run_dir, what)
    with _holding(run_dir / LOCK_NAME, f"The {what} '{run_dir}'", _RUN_RISK):
        yield run_dir


@contextmanager
def output_lock(
    output: str | os.PathLike, what: str = "output", *, file: bool = False
) -> Iterator[Path]:
    """Hold ``.NAME.lock`` beside ``output`` while the block writes it (a directory that is
    staged and renamed into place, or with ``file`` a single file, which an existing
    directory cannot become: refused before any work)."""
    output = Path(output)
    if file and output.is_dir():
        raise DemixganError(
            f"The {what} '{output}' is an existing directory, so the file cannot be written "
            "there. Give a file name (for example inside that directory)."
        )
    resolved = output.resolve()
    check_writable_dir(resolved.parent, what)
    lock_path = resolved.parent / f".{resolved.name}.lock"
    with _holding(lock_path, f"The {what} '{output}'", _OUTPUT_RISK):
        yield output


def holder(lock_path: str | os.PathLike) -> Holder | None:
    """The holder a lock file records, or None (no file, not yet written, not ours)."""
    try:
        data = json.loads(Path(lock_path).read_text(encoding="utf-8"))
        return Holder(
            int(data["pid"]), str(data["host"]), float(data["started"]), str(data["command"])
        )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


def writer_active(directory: str | os.PathLike) -> bool:
    """Whether a live process holds the run lock of ``directory`` (read-only probe: it takes
    no lock, so it can never make a writer's acquire fail)."""
    found = holder(Path(directory) / LOCK_NAME)
    return found is not None and found.alive()


def read_newest(
    folder: str | os.PathLike, load: Callable[[Checkpoint], T]
) -> tuple[Checkpoint, T] | None:
    """``(checkpoint, load(checkpoint))`` for the newest usable checkpoint in ``folder``, or
    None when it holds none; a DemixganError when every one of them is damaged.

    A training run rotates its checkpoints (``_prune``) while readers pick and load the
    newest one, so the chosen files may vanish between the choice and the load. When a load
    fails while a writer holds the run's lock (or the checkpoint set changed meanwhile), the
    newest checkpoint is chosen again, for up to ``_READ_PATIENCE`` seconds; a damaged
    checkpoint of a run nobody writes fails at once, with its own error (whatever ``load``
    raised). Skipped checkpoints are warned about only for the attempt that counts.
    """
    from demixgan.io import checkpoints

    folder = Path(folder)
    run_dirs = (folder, folder.parent)
    deadline = time.monotonic() + _READ_PATIENCE
    attempt = 0
    while True:
        attempt += 1
        before = _listing(folder)
        error: Exception | None = None
        result = None
        latest, skipped = checkpoints.newest_usable(folder)
        if latest is not None:
            try:
                result = (latest, load(latest))
            except Exception as exc:  # a file deleted mid-load surfaces as any type
                error = exc
        troubled = error is not None or bool(skipped)
        moving = _listing(folder) != before or any(writer_active(d) for d in run_dirs)
        if troubled and moving and time.monotonic() < deadline:
            time.sleep(min(0.02 * attempt, 0.2))
            continue
        if error is not None:
            raise error
        if latest is None and skipped:
            raise checkpoints.unusable(folder, skipped)
        for passed in skipped:
            warnings.warn(str(passed), stacklevel=2)
        return result


# -- internals -----------------------------------------------------------------------------


def _listing(folder: Path) -> frozenset[str]:
    try:
        return frozenset(entry.name for entry in os.scandir(folder) if entry.name.endswith(".json"))
    except OSError:
        return frozenset()


@contextmanager
def _holding(lock_path: Path, subject: str, risk: str) -> Iterator[None]:
    key = os.path.realpath(lock_path)
    held = _HELD.get(key)
    if held is not None:  # this process holds it already (an outer writer): re-entrant
        held.count += 1
        try:
            yield
        finally:
            held.count -= 1
        return
    hold = _acquire(lock_path, subject, risk)
    _HELD[key] = hold
    try:
        yield
    finally:
        del _HELD[key]
        _release(hold)


class _Replaced(Exception):
    """The inode just locked is no longer the lock file's: its holder removed it on release."""


def _acquire(lock_path: Path, subject: str, risk: str) -> _Hold:
    stamped: list[tuple[int, int]] = []

    def verify_and_stamp(fd: int) -> None:
        """Run by filelock on the locked descriptor: refuse a removed inode (a waiter that
        opened the file before its holder removed it would otherwise hold a lock nobody else
        sees), then record who holds it."""
        status = os.fstat(fd)
        identity = (status.st_dev, status.st_ino)
        try:
            current = os.stat(lock_path)
        except FileNotFoundError:
            raise _Replaced from None
        if status.st_nlink == 0 or (current.st_dev, current.st_ino) != identity:
            raise _Replaced
        os.ftruncate(fd, 0)
        os.pwrite(fd, _record(), 0)
        stamped.append(identity)

    lock = filelock.FileLock(lock_path, timeout=0, on_acquired=verify_and_stamp)
    found = None
    for attempt in range(_ATTEMPTS):
        try:
            lock.acquire(timeout=0)
        except _Replaced:
            continue  # its last holder removed it just now: lock the new file
        except filelock.Timeout:
            found = holder(lock_path)
            if found is not None and found.alive():
                break
            # No live holder recorded: one is just starting or just released; look again.
            time.sleep(0.02 * (attempt + 1))
            continue
        except OSError as exc:
            raise DemixganError(
                f"{subject} cannot be locked for writing ('{lock_path}': "
                f"{exc.strerror or exc}). Check that you may write there, then run the "
                "command again."
            ) from None
        return _Hold(lock, lock_path, stamped[-1] if stamped else None)
    who = found.describe() if found is not None else "PID unknown"
    raise DemixganError(
        f"{subject} is in use by another demixgan process ({who}): {risk}. Wait for it to "
        "finish or stop it, then run the command again."
    )


def _record() -> bytes:
    """Who holds a lock, as :func:`holder` reads it back."""
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "command": _command(),
    }
    return (json.dumps(record) + "\n").encode("utf-8")


def _command() -> str:
    argv = sys.argv
    if not argv:
        return ""
    program = Path(argv[0]).name
    if program in ("__main__.py", "demixgan"):
        program = "demixgan"
    elif program == "-c":
        program = "python -c ..."
    return " ".join([program, *argv[1:]])[:200]


def _release(hold: _Hold) -> None:
    """Remove the lock file while still holding it, then unlock, so a finished writer leaves
    nothing behind. Safe for flock only because every acquire checks, holding the lock, that
    the inode it locked is still the file's (``verify_and_stamp``); without that check (an
    older filelock: ``inode`` is None) the file stays."""
    try:
        if hold.inode is not None:
            status = os.stat(hold.path)
            if (status.st_dev, status.st_ino) == hold.inode:
                os.unlink(hold.path)
    except OSError:
        pass  # gone already, or a read-only directory by now: the unlocked file is harmless
    finally:
        hold.lock.release()
