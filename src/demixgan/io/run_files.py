"""A run directory: resolved config, JSONL stats, evolution grids, checkpoints, TensorBoard."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from demixgan.errors import DemixganError
from demixgan.io.atomic import atomic_path, check_writable_dir
from demixgan.io.json_files import json_problem
from demixgan.io.locks import LOCK_NAME
from demixgan.io.stale import remove_stale_temps
from demixgan.spec.config import RunConfig, write_resolved_config

CONFIG_FILE = "config.json"
STATS_FILE = "stats.jsonl"
CHECKPOINT_DIR = "checkpoints"
EVOLUTION_DIR = "evolution"


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    return Path(root) / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_new_run_dir(run_dir: Path) -> Path:
    """Refuse, before any work, a directory a new run must not be written into.

    A regular file cannot hold a run; a non-empty directory holds an earlier run (continue
    it with --resume) or something else (a lock file or the temp files a killed run left
    behind do not count).
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise DemixganError(
            f"The run directory '{run_dir}' is a file, not a directory, so a run cannot be "
            "written there. Choose another path with --run-dir (a new or empty directory)."
        )
    if run_dir.is_dir():
        remove_stale_temps(run_dir, ".tmp")  # e.g. the config.json of a run killed at once
    if run_dir.is_dir() and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
        if (run_dir / CONFIG_FILE).is_file():
            raise DemixganError(
                f"The run directory '{run_dir}' already holds a run. Continue that run with "
                f"'--resume {run_dir}', or choose another directory with --run-dir."
            )
        raise DemixganError(
            f"The directory '{run_dir}' is not empty and is not a demixgan run (it has no "
            f"{CONFIG_FILE}), so a new run would mix its files with what is there. Choose "
            "another directory with --run-dir (a new or empty one)."
        )
    return run_dir


def prepare_new_run(config: RunConfig, run_dir: Path) -> Path:
    """Create the directory of a fresh run and write its resolved config; refuse to mix runs.

    Call it holding the run's lock (locks.run_lock), so two new runs cannot both pass the
    check and write into one directory."""
    check_new_run_dir(run_dir)
    check_writable_dir(run_dir, "run directory")
    write_resolved_config(config, run_dir / CONFIG_FILE)
    return run_dir


def training_minutes(run_dir: Path, batch_size: int, until: int | None = None) -> float:
    """Minutes of training the stats log records, summed over every resumed segment (with
    ``until``, of its steps up to that one: a budget grid's largest candidate in a longer run).

    Each line gives the throughput of the steps since the line before it, so a run that was
    stopped and resumed (the lines past its checkpoint are dropped) still adds up to the time
    its kept steps took, where a stopwatch around one segment would count only the last. A
    resume from a checkpoint between two log lines counts the steps from the last kept line
    at the resumed window's rate: off by at most one logging window per resume.
    """
    seconds, previous_step = 0.0, 0
    for record in read_stats(run_dir / STATS_FILE):
        rate = record.get("observations_per_s")
        if not isinstance(rate, (int, float)) or not rate > 0:
            continue  # a line without a throughput (written by hand) adds no time
        if until is not None and record["step"] > until:
            break
        steps = record["step"] - previous_step
        seconds += steps * batch_size / rate
        previous_step = record["step"]
    return seconds / 60


def training_threads(run_dir: Path) -> list[int]:
    """The CPU thread counts the stats log's lines ran on (several where resumed segments
    differ); none for a log written before the engine recorded them."""
    records = read_stats(run_dir / STATS_FILE)
    return sorted({r["threads"] for r in records if isinstance(r.get("threads"), int)})


def on_threads(threads: list[int]) -> str:
    """How a provenance line says what a training ran on: ' on 1 thread', ' on 1 and 2
    threads', or nothing where it was not recorded."""
    if not threads:
        return ""
    counts = " and ".join(map(str, threads))
    return f" on {counts} thread" + ("" if threads == [1] else "s")


def read_stats(path: Path) -> list[dict[str, Any]]:
    """The records of a stats log; a cut-short last line (a kill mid-write) is dropped with a
    warning, a damaged line before it is a DemixganError: only the last can be half-written."""
    return [record for _, record in _stats_lines(path)]


def _stats_lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line as written, record) of each valid line of a stats log (see read_stats)."""
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DemixganError(
            f"The training log '{path}' cannot be read ({exc}). Check its permissions, or move "
            "it away (the checkpoints do not need it) and run the command again."
        ) from None
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    records = []
    for index, (number, line) in enumerate(numbered):
        record = _stats_record(line)
        if record is not None:
            records.append((line, record))
        elif index == len(numbered) - 1:
            warnings.warn(
                f"Dropping line {number} of '{path}': it is not a complete JSON record (the "
                f"process writing it was stopped mid-line): {line[:80]!r}",
                stacklevel=2,
            )
        else:
            raise DemixganError(
                f"The training log '{path}' is damaged: line {number} of {len(lines)} is not "
                f"a JSON record with a step ({line[:60]!r}), and only the last line can be cut "
                "short by a stopped run. Restore the file, or delete the damaged line (the "
                "checkpoints do not need the log), then run the command again."
            )
    return records


def _stats_record(line: str) -> dict[str, Any] | None:
    record, problem = json_problem(line)
    if problem is not None:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return None
    return record


class StatsLog:
    """Append-only JSONL log; on resume, lines past the resumed step are dropped first."""

    def __init__(self, path: Path, *, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [line for line, record in _stats_lines(path) if record["step"] <= resume_step]
            with atomic_path(path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardLog:
    """TensorBoard scalars when the optional ``tensorboard`` extra is installed; else nothing."""

    def __init__(self, run_dir: Path, *, resume_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self._writer = None
        else:
            # On resume, events logged after the checkpoint by the killed run are discarded.
            purge = resume_step + 1 if resume_step is not None else None
            self._writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if self._writer is not None:
            for key, value in scalars.items():
                self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
