"""A run directory: resolved config, JSONL stats, evolution grids, checkpoints, TensorBoard."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from demixgan.errors import DemixganError
from demixgan.io.atomic import check_writable_dir
from demixgan.spec.config import RunConfig, write_resolved_config

CONFIG_FILE = "config.json"
STATS_FILE = "stats.jsonl"
CHECKPOINT_DIR = "checkpoints"
EVOLUTION_DIR = "evolution"


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    return Path(root) / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_new_run(config: RunConfig, run_dir: Path) -> Path:
    """Create the directory of a fresh run and write its resolved config; refuse to mix runs."""
    if run_dir.exists() and any(run_dir.iterdir()):
        raise DemixganError(
            f"The run directory '{run_dir}' already exists and is not empty. Continue that run "
            f"with '--resume {run_dir}', or choose another directory with --run-dir."
        )
    check_writable_dir(run_dir, "run directory")
    write_resolved_config(config, run_dir / CONFIG_FILE)
    return run_dir


def training_minutes(run_dir: Path, batch_size: int) -> float:
    """Minutes of training the stats log records, summed over every resumed segment.

    Each line gives the throughput of the steps since the line before it, so a run that was
    stopped and resumed (the lines past its checkpoint are dropped) still adds up to the time
    its kept steps took, where a stopwatch around one segment would count only the last. A
    resume from a checkpoint between two log lines counts the steps from the last kept line
    at the resumed window's rate: off by at most one logging window per resume.
    """
    path = run_dir / STATS_FILE
    if not path.is_file():
        return 0.0
    seconds, previous_step = 0.0, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            steps = record["step"] - previous_step
            seconds += steps * batch_size / record["observations_per_s"]
            previous_step = record["step"]
    return seconds / 60


class StatsLog:
    """Append-only JSONL log; on resume, lines past the resumed step are dropped first."""

    def __init__(self, path: Path, *, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            path.write_text("".join(line + "\n" for line in kept))
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
