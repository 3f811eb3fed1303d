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
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from demixgan.errors import DemixganError
from demixgan.io import checkpoints, locks
from demixgan.io.run_files import CHECKPOINT_DIR, STATS_FILE, StatsLog, TensorBoardLog
from demixgan.spec.validation import whole
from demixgan.training.distributed import Distributed, mean_across_processes

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, index) over the seed space
#: Called with the number of steps just done (a tqdm bar's ``update``, a log line).
Progress = Callable[[int], None]
#: cuBLAS's workspace setting under which its matmuls give the same result run to run.
CUBLAS_DETERMINISTIC = ":4096:8"


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

    def check_checkpoint(self, metadata: Mapping[str, Any]) -> list[str]:
        """Refuse (DemixganError) a checkpoint this task cannot continue from (another kind of
        run, other shapes, a changed loss); return the changes it will apply, for the user."""

    def restore(self, weights: Mapping[str, dict[str, torch.Tensor]], state: dict) -> None:
        """Continue from a checkpoint's weights and resume state (checked by the engine)."""

    def non_finite(self, what: str) -> DemixganError:
        """The error that stops training when ``what`` (losses, weights) became NaN or inf."""


def run(
    task: TrainingTask,
    run_dir: Path | None,
    *,
    resume: bool = False,
    progress: bool | Progress = False,
    keep_last: int = 3,
    keep_every: int = 0,
) -> checkpoints.Checkpoint | None:
    """Step ``task`` to its end; return its last checkpoint (None without a run directory).
    ``keep_last`` and ``keep_every`` say which checkpoints stay (``checkpoints.save_checkpoint``).

    ``resume`` continues from the newest complete checkpoint in ``run_dir`` (the task restores
    its weights and state), dropping log lines past it; without one, the task starts at 0.
    The process that writes (rank 0) holds the run directory's lock throughout, so a second
    writer is refused instead of interleaving its checkpoints and log lines with these.
    """
    main = task.dist.is_main and run_dir is not None
    folder = None if run_dir is None else run_dir / CHECKPOINT_DIR
    with locks.run_lock(run_dir) if main else nullcontext(), deterministic_kernels(task):
        if resume and folder is not None:
            resume_from(task, folder)
        stats = StatsLog(run_dir / STATS_FILE, resume_step=task.step) if main else None
        board = TensorBoardLog(run_dir, resume_step=task.step if resume else None) if main else None
        try:
            progress = progress if task.dist.is_main else False
            run_steps(task, stats, board, progress, folder, (keep_last, keep_every))
        finally:
            for log in (stats, board):
                if log is not None:
                    log.close()
        return checkpoints.latest_checkpoint(folder) if main else None


@contextmanager
def deterministic_kernels(task: TrainingTask) -> Iterator[None]:
    """On a GPU, deterministic kernels for the run (warning where an op has none), the
    previous setting restored after: CUDA's fastest kernels may differ from run to run, and a
    seeded run must give the same weights, also when resumed (the CPU's always do)."""
    if not on_gpu(task.modules()):
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def on_gpu(modules: Mapping[str, nn.Module]) -> bool:
    """Whether a task's networks train on a CUDA device."""
    return any(p.is_cuda for module in modules.values() for p in module.parameters())


def resume_from(task: TrainingTask, folder: Path) -> checkpoints.Checkpoint | None:
    """Restore ``task`` from the newest usable checkpoint in ``folder``, every check first.

    Refused before anything is restored or written: a run whose checkpoints are all
    unusable (starting over would silently discard its training), a checkpoint of another
    kind or configuration (``task.check_checkpoint``), and steps that are not this run's.
    A run with no checkpoint yet (stopped before its first) starts from step 0, with a warning.
    """
    latest = _latest_for_resume(folder)
    if latest is None:
        return None
    applied = task.check_checkpoint(latest.metadata)
    fit = checkpoints.Fit(task.modules(), what="the networks the run's config.json builds")
    weights, _ = checkpoints.load_weights(latest.weights_path, fit=fit)
    state = checkpoints.load_resume_state(latest)
    _check_steps(task, latest, state)
    if task.dist.is_main:
        for change in applied:
            print(f"demixgan: {change}", file=sys.stderr, flush=True)
    task.restore(weights, state)
    return latest


def _latest_for_resume(folder: Path) -> checkpoints.Checkpoint | None:
    """The newest verified checkpoint; None only when there is none at all yet."""
    latest, skipped = checkpoints.newest_usable(folder)
    run_dir = folder.parent
    if latest is None and skipped:
        reasons = "; ".join(
            f"'{s.sidecar_path.name}': {s.reason.split('. ')[0].rstrip('.')}" for s in skipped
        )
        raise DemixganError(
            f"Cannot resume the run in '{run_dir}': none of its {len(skipped)} checkpoints "
            f"can be used ({reasons}). Starting again from step 0 would silently discard its "
            "training, so nothing was written. Restore the damaged files (for example from a "
            f"backup), or, to really start over, delete '{folder}' and resume again."
        )
    for passed in skipped:  # newer checkpoints skipped on the way to ``latest``
        warnings.warn(str(passed), stacklevel=3)
    if latest is None:
        warnings.warn(
            f"The run in '{run_dir}' has no complete checkpoint yet (it was stopped before its "
            "first one was written), so training starts from step 0.",
            stacklevel=3,
        )
    return latest


def _check_steps(task: TrainingTask, checkpoint: checkpoints.Checkpoint, state: dict) -> None:
    """The step a checkpoint resumes at must be one number, within this run's steps."""
    recorded = state.get("step")
    if not whole(recorded):
        problem = f"its resume state records step {recorded!r}, not a whole number"
    elif recorded != checkpoint.step:
        problem = (
            f"its sidecar records step {checkpoint.step} but its resume state step {recorded}, "
            "so its files belong to different checkpoints"
        )
    elif not 0 <= recorded <= task.total_steps:
        problem = f"step {recorded} lies outside this run's steps 0..{task.total_steps}"
    else:
        return
    raise DemixganError(
        f"Cannot resume from the checkpoint '{checkpoint.sidecar_path}': {problem}. It does "
        "not belong to this run as configured (its files were edited or mixed with another "
        "run's, or the run was shortened since), so nothing was written. Delete this "
        "checkpoint's three files to resume from the one before it, restore the run's settings, "
        "or start a new run."
    )


def run_steps(
    task: TrainingTask,
    stats: StatsLog | None,
    board: TensorBoardLog | None,
    progress: bool | Progress,
    folder: Path | None,
    keep: tuple[int, int],
) -> None:
    """The loop: step, stop on non-finite values, log every ``log_every``, checkpoint when due."""
    from demixgan.io.progress import progress_bar

    bar = progress_bar(
        task.total_steps, task.name, unit="step", enabled=progress is True, initial=task.step
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
            record.update(threads=torch.get_num_threads())  # what the throughput ran on
            record.update(task.log_fields(done))
            window_start, window_steps = time.perf_counter(), 0
            bar.set_postfix({label: f"{record[key]:.3f}" for label, key in task.shown.items()})
            if stats is not None:
                stats.write(record)
                board.write(done, {k: record[k] for k in values})
        if task.dist.is_main:
            due = task.after_step(done)
            if folder is not None and due:
                save_checkpoint(task, folder, *keep)
    bar.close()


def save_checkpoint(
    task: TrainingTask, folder: Path, keep_last: int, keep_every: int = 0
) -> checkpoints.Checkpoint:
    """The task's checkpoint at its current step; refused when a weight is NaN or infinite.
    Its sidecar says where the steps ran: the same seed gives the same weights only on the
    same device and thread count."""
    modules = task.modules()
    if not all(torch.isfinite(p).all() for m in modules.values() for p in m.parameters()):
        raise task.non_finite("weights")
    first = next((p for m in modules.values() for p in m.parameters()), None)
    where = {
        "device": "cpu" if first is None else str(first.device),
        "threads": torch.get_num_threads(),
    }
    metadata = {**task.metadata(), checkpoints.TRAINED_ON: where}
    return checkpoints.save_checkpoint(
        folder,
        task.step,
        modules,
        metadata,
        task.resume_state(),
        keep_last=keep_last,
        keep_every=keep_every,
    )
