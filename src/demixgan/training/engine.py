"""The one training engine: every trained network of demixgan is a task stepped by ``run``.

A task (the GAN step in training/loop.py, the separator step in training/separator.py, the
classifier step in training/classifier.py) knows how to take one step and what its state is;
the engine does everything else the same way for all of them: seeded draws per step
(``derived_generator``), exact resume from the newest complete checkpoint, ``stats.jsonl`` and
TensorBoard, atomic checkpoints (safetensors + resume state, never pickled code), the stop on
NaN losses or weights, a progress bar, and only rank 0 writing under torchrun. Without a run
directory a task trains in memory (the Python API's quick path) through the same loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from demixgan.errors import DemixganError
from demixgan.io import checkpoints
from demixgan.io.run_files import CHECKPOINT_DIR, STATS_FILE, StatsLog, TensorBoardLog
from demixgan.training.distributed import Distributed, mean_across_processes

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, index) over the seed space
#: Called with the number of steps just done (a tqdm bar's ``update``, a log line).
Progress = Callable[[int], None]


def derived_generator(seed: int, index: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for draw ``index`` of ``stream``, independent of any other state."""
    return torch.Generator().manual_seed((seed * _MIX + stream * 7919 + index) % (2**63))


class TrainingTask(Protocol):
    """One kind of training, as the engine steps it."""

    name: str
    step: int  # steps done so far
    total_steps: int
    batch_size: int  # observations per step, for the throughput in stats.jsonl
    log_every: int
    dist: Distributed
    #: Progress-bar labels of the logged values to show (label -> key of ``train_step``'s).
    shown: Mapping[str, str]

    def train_step(self) -> dict[str, float]:
        """One step (``step`` += 1); its scalar values for the log."""

    def log_fields(self, done: int) -> dict[str, Any]:
        """Fields a stats line of step ``done`` adds (the GAN's epoch); usually none."""

    def after_step(self, done: int) -> bool:
        """Side outputs after step ``done`` (rank 0 only); True when a checkpoint is due."""

    def modules(self) -> dict[str, nn.Module]:
        """The networks a checkpoint stores (safetensors)."""

    def metadata(self) -> dict[str, Any]:
        """The sidecar: what the checkpoint is and what rebuilds it."""

    def resume_state(self) -> dict[str, Any]:
        """Optimisers, schedules, RNG states: what exact resume needs beyond the weights."""

    def restore(self, weights: Mapping[str, dict[str, torch.Tensor]], state: dict) -> None:
        """Continue from a checkpoint's weights and resume state."""

    def non_finite(self, what: str) -> DemixganError:
        """The error that stops training when ``what`` (losses, weights) became NaN or inf."""


def run(
    task: TrainingTask,
    run_dir: Path | None,
    *,
    resume: bool = False,
    progress: bool | Progress = False,
    keep_last: int = 3,
) -> checkpoints.Checkpoint | None:
    """Step ``task`` to its end; return its last checkpoint (None without a run directory).

    ``resume`` continues from the newest complete checkpoint in ``run_dir`` (the task restores
    its weights and state), dropping log lines past it; without one, the task starts at 0.
    """
    main = task.dist.is_main and run_dir is not None
    folder = None if run_dir is None else run_dir / CHECKPOINT_DIR
    if resume and folder is not None:
        latest = checkpoints.latest_checkpoint(folder)
        if latest is not None:
            weights, _ = checkpoints.load_weights(latest.weights_path)
            task.restore(weights, checkpoints.load_resume_state(latest))
    stats = StatsLog(run_dir / STATS_FILE, resume_step=task.step) if main else None
    board = TensorBoardLog(run_dir, resume_step=task.step if resume else None) if main else None
    try:
        run_steps(task, stats, board, progress if task.dist.is_main else False, folder, keep_last)
    finally:
        for log in (stats, board):
            if log is not None:
                log.close()
    return checkpoints.latest_checkpoint(folder) if main else None


def run_steps(
    task: TrainingTask,
    stats: StatsLog | None,
    board: TensorBoardLog | None,
    progress: bool | Progress,
    folder: Path | None,
    keep_last: int,
) -> None:
    """The loop: step, stop on non-finite values, log every ``log_every``, checkpoint when due."""
    from tqdm import tqdm

    bar = tqdm(
        total=task.total_steps,
        initial=task.step,
        desc=task.name,
        unit="step",
        disable=progress is not True,
        dynamic_ncols=True,
    )
    window_start, window_steps = time.perf_counter(), 0
    while task.step < task.total_steps:
        values = task.train_step()
        window_steps += 1
        if not all(math.isfinite(v) for v in values.values()):
            raise task.non_finite("losses")
        bar.update(1)
        if callable(progress):
            progress(1)
        done = task.step
        if done % task.log_every == 0 or done == task.total_steps:
            logged = mean_across_processes(torch.tensor(list(values.values())), task.dist)
            record = dict(zip(values, logged.tolist(), strict=True))
            elapsed = time.perf_counter() - window_start
            record.update(step=done, observations_per_s=window_steps * task.batch_size / elapsed)
            record.update(task.log_fields(done))
            window_start, window_steps = time.perf_counter(), 0
            bar.set_postfix({label: f"{record[key]:.3f}" for label, key in task.shown.items()})
            if stats is not None:
                stats.write(record)
                board.write(done, {k: record[k] for k in values})
        if task.dist.is_main:
            due = task.after_step(done)
            if folder is not None and due:
                save_checkpoint(task, folder, keep_last)
    bar.close()


def save_checkpoint(task: TrainingTask, folder: Path, keep_last: int) -> checkpoints.Checkpoint:
    """The task's checkpoint at its current step; refused when a weight is NaN or infinite."""
    modules = task.modules()
    if not all(torch.isfinite(p).all() for m in modules.values() for p in m.parameters()):
        raise task.non_finite("weights")
    return checkpoints.save_checkpoint(
        folder, task.step, modules, task.metadata(), task.resume_state(), keep_last=keep_last
    )
