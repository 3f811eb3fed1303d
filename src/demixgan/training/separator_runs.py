"""A separator run directory: the job it records, and training or resuming it under its lock.

``demixgan separator`` and the experiments' checkpoint store train separators and peers the
same way, so both call ``run_job``: a new run records its job (checkpoint, options, teacher,
peer) before anything else is written, a killed one resumes from that record alone, and a
finished one leaves its separator (and, for a run's own separator of whole mixtures, the
method chosen on validation) beside its checkpoints.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from demixgan.errors import DemixganError
from demixgan.inference.amortized import Separator, check_teacher, load_separator, save_separator
from demixgan.inference.api import TrainedModel, load
from demixgan.inference.choice import CHOICE_FILE, ChoiceBudget, choose, write_choice
from demixgan.inference.options import SeparatorOptions
from demixgan.inference.tasks import measurement_operator
from demixgan.io.atomic import atomic_path, check_writable_dir
from demixgan.io.checkpoints import latest_checkpoint
from demixgan.io.json_files import read_json
from demixgan.io.locks import LOCK_NAME, run_lock
from demixgan.io.progress import progress_bar
from demixgan.io.run_files import CHECKPOINT_DIR, training_minutes
from demixgan.io.stale import remove_stale_temps
from demixgan.spec.device import resolve_device
from demixgan.training.separator import (
    TEACHER_DIR,
    train_model_separator,
    train_peer,
)

#: The record of a separator run (what it separates, for which checkpoint, with what options).
JOB_FILE = "separator-job.json"


@dataclass(frozen=True)
class FinishedRun:
    """What a separator run left: its separator, its training seconds (every segment of a
    resumed run, as its stats logs record them) and the method chosen on validation, if any."""

    separator: Separator
    seconds: float
    choice: dict | None
    weights: Path  # the separator's weights file
    options: dict  # the options it was trained with, as recorded
    trained_now: bool  # False: a resumed run that had already finished


def new_job(
    checkpoint: str | Path,
    options: SeparatorOptions,
    *,
    peer: str | None = None,
    teacher: str | Path | None = None,
    measurements: int | None = None,
    matrix_seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """What a new separator run records: enough for a resume to continue it alone (absolute
    paths, since a resume may run from another directory). ``device`` is where it trains
    (auto: a GPU when there is one); the options alone decide what it learns."""

    def absolute(path: str | Path | None) -> str | None:
        return None if path is None else str(Path(path).resolve())

    return {
        "checkpoint": absolute(checkpoint),
        "options": asdict(options),
        "measurements": measurements,
        "matrix_seed": matrix_seed,
        "teacher": absolute(teacher),
        "peer": peer,
        "device": device,
    }


def run_job(
    job: Mapping[str, Any],
    run_dir: Path,
    *,
    resume: bool,
    progress: bool = True,
    choice: ChoiceBudget | None = None,
    device: str | None = None,
) -> FinishedRun:
    """Train the separator ``job`` describes in ``run_dir`` (new), or continue it (``resume``)
    on ``device`` (default: the one the job recorded; a resumed run may move to another).

    Every input is checked before the lock is taken and anything is written; a new run stopped
    before its first checkpoint (diverged, interrupted) leaves nothing behind. A run's own
    separator of whole mixtures then chooses its default method on validation mixtures
    (inference/choice.py), spending ``choice`` (default: ``ChoiceBudget()``).
    """
    choice = choice or ChoiceBudget()
    options = job_options(job, run_dir)
    where = resolve_device(device or job.get("device", "auto"))
    trained = load(job["checkpoint"])
    trained.require_separable()
    operator = measurement_operator(job["measurements"], job["matrix_seed"], trained.model.image)
    teacher = _checked_teacher(job["teacher"], operator, trained, job.get("peer"))
    if not resume:
        check_new_run(run_dir)  # refused before its lock file is made; checked again under it
    existed = run_dir.is_dir()
    try:
        with run_lock(run_dir, "separator run directory"):  # every input checked: lock, write
            try:
                models = (trained, operator, teacher)
                return _train(job, run_dir, resume, options, models, progress, choice, where)
            except BaseException:
                if not resume and latest_checkpoint(run_dir / CHECKPOINT_DIR) is None:
                    for entry in run_dir.iterdir():
                        if entry.name != LOCK_NAME:
                            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                raise
    finally:
        if not existed and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()


def _train(
    job, run_dir: Path, resume: bool, options, models, progress, choice: ChoiceBudget, device
):
    """The writing half of ``run_job``, under the run directory's lock."""
    trained, operator, teacher = models
    if resume:
        finished = finished_run(run_dir)
        if finished is not None:
            return finished
    else:
        start_run(run_dir, job)  # every input checked: nothing is written before this
    peer = job.get("peer")
    total = options.steps + (options.remix_steps if trained.remixable or peer else 0)
    if operator is not None and trained.remixable and teacher is None:
        total *= 2  # the separator of whole mixtures that splits them for the remixing
    done = steps_done(run_dir) if resume else 0
    common = {"run_dir": run_dir, "resume": resume, "device": device}
    with progress_bar(
        total, peer or "separator", unit="step", initial=done, enabled=progress
    ) as bar:
        separator = (
            train_peer(trained, peer, options, mixit=teacher, progress=bar.update, **common)
            if peer
            else train_model_separator(
                trained, options, operator=operator, teacher=teacher, progress=bar.update, **common
            )
        )
    seconds = training_seconds(run_dir, options.batch_size)
    metadata = {
        "trained_for": str(trained.checkpoint),
        "observes": separator.observes,
        "teacher": job["teacher"],
        "peer": peer,
        "options": asdict(options),
        "remixed": trained.remixable,
        "seconds": round(seconds, 1),
        "device": str(device),
    }
    checkpoint = save_separator(separator, run_dir, metadata)
    record = None
    if operator is None and not peer:  # on the CPU, where the choice's fits were checked
        record = choose(trained, separator, choice)
        write_choice(run_dir, record)
    weights = checkpoint.weights_path
    return FinishedRun(separator, seconds, record, weights, asdict(options), trained_now=True)


def finished_run(run_dir: Path) -> FinishedRun | None:
    """A finished run's separator, recorded seconds and choice; None while it is unfinished."""
    found = latest_checkpoint(run_dir)
    if found is None:
        return None
    separator, metadata = load_separator(run_dir)
    choice_file = run_dir / CHOICE_FILE
    choice = (
        read_json(choice_file, "method choice", "Train the separator again to choose anew.")
        if choice_file.is_file()
        else None
    )
    seconds, options = float(metadata.get("seconds", 0.0)), metadata.get("options", {})
    return FinishedRun(separator, seconds, choice, found.weights_path, options, trained_now=False)


def job_options(job: Mapping[str, Any], run_dir: Path) -> SeparatorOptions:
    try:
        return SeparatorOptions(**job["options"])
    except TypeError as exc:
        raise DemixganError(
            f"The separator run '{run_dir}' recorded options this version does not know ({exc}); "
            "start a new run with 'demixgan separator RUN -o NEW_DIR'."
        ) from None


def _checked_teacher(path: str | None, operator, trained: TrainedModel, peer: str | None):
    """The fixed teacher of a compressive separator or of the RemixIT peer, checked against
    the model."""
    if path is not None and operator is None and peer != "remixit":
        raise DemixganError(
            "--teacher splits the training mixtures for a separator of compressive "
            "measurements: give --measurements too (a separator of whole mixtures is its own "
            "teacher)."
        )
    if path is None:
        return None
    teacher = load_separator(path)[0]
    check_teacher(teacher, trained.model)
    return teacher


def check_new_run(run_dir: Path) -> Path:
    """Refuse an existing separator run or other content before anything is written (the
    lock file and temp files of a killed run do not count)."""
    if run_dir.is_dir():
        remove_stale_temps(run_dir, ".tmp")
    if run_dir.exists() and (
        not run_dir.is_dir() or any(p.name != LOCK_NAME for p in run_dir.iterdir())
    ):
        hint = (
            f"continue it with 'demixgan separator --resume {run_dir}'"
            if (run_dir / JOB_FILE).is_file()
            else "choose a new directory with -o"
        )
        raise DemixganError(
            f"The separator directory '{run_dir}' already exists and is not empty: {hint}."
        )
    return run_dir


def start_run(run_dir: Path, job: Mapping[str, Any]) -> Path:
    """A new separator run directory with its job recorded; an existing run is refused.

    Call it holding the run's lock (locks.run_lock; its lock file does not count as content).
    """
    check_new_run(run_dir)
    check_writable_dir(run_dir, "separator run")
    with atomic_path(run_dir / JOB_FILE) as tmp:
        tmp.write_text(json.dumps(job, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return run_dir


def read_job(run_dir: Path) -> dict[str, Any]:
    """The job a separator run recorded (for ``--resume``)."""
    path = run_dir / JOB_FILE
    if not path.is_file():
        raise DemixganError(
            f"'{run_dir}' is not a separator run (it has no {JOB_FILE}); --resume takes the "
            "directory a 'demixgan separator ... -o DIR' run wrote."
        )
    job = read_json(
        path, "separator job", "Start a new run with 'demixgan separator ... -o NEW_DIR'."
    )
    if (
        not isinstance(job, dict)
        or not isinstance(job.get("options"), dict)
        or not isinstance(job.get("device", "auto"), str)
    ):
        raise DemixganError(
            f"The separator job '{path}' is not one demixgan wrote. Start a new run instead."
        )
    return job


def training_seconds(run_dir: Path, batch_size: int) -> float:
    """Seconds of training a separator run's stats logs record (its teacher's included),
    summed over every resumed segment: a stopwatch around the call that finishes a resumed run
    counts only its last segment, and the budget tables would understate it."""
    folders = (run_dir, run_dir / TEACHER_DIR)
    return 60 * sum(training_minutes(folder, batch_size) for folder in folders)


def steps_done(run_dir: Path) -> int:
    """Steps a separator run (and its teacher's run) had checkpointed, for progress lines."""
    done = 0
    for folder in (run_dir, run_dir / TEACHER_DIR):
        latest = latest_checkpoint(folder / CHECKPOINT_DIR)
        done += 0 if latest is None else latest.step
    return done
