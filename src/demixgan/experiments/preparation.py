"""What an experiment trains before it evaluates, as steps that several processes can share.

``demixgan reproduce NAME --train-only`` trains every model an experiment declares, then each
model's separator, peers and compressive-sensing separator, then the classifier. Those are
independent trainings except where one reads another (a separator reads its GAN, RemixIT is
taught by MixIT, a separator of measurements by the separator of whole mixtures): with
``--jobs N`` a scheduler hands each step whose inputs are finished to one of N worker
processes, so that N trainings run at once.

Steps are planned as their inputs finish: a model's peers live where the loaded model says
(``Context.separator_folder``), and two models of one setting share them, so a peer is one
step however many models read it. Every step trains into the store through ``Context``, as an
experiment's own run would, and a worker's thread count is the machine's cores shared out.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing import get_context
from multiprocessing.pool import Pool
from pathlib import Path
from typing import TYPE_CHECKING

from demixgan.experiments.context import Context
from demixgan.experiments.profiles import get_profile
from demixgan.inference.choice import PEERS, TEACHERS
from demixgan.spec.device import resolve_device

if TYPE_CHECKING:  # the registry imports this module when it trains
    from demixgan.experiments.registry import Experiment


@dataclass(frozen=True)
class Setup:
    """What a worker needs to rebuild the experiment's context in its own process."""

    profile: str
    checkpoint_store: str
    data_dir: str | None
    progress: bool
    device: str = "cpu"

    def context(self) -> Context:
        return Context(
            get_profile(self.profile),
            Path("."),
            Path(self.checkpoint_store),
            self.data_dir,
            self.progress,
            resolve_device(self.device),
        )


@dataclass(frozen=True)
class Step:
    """One training: ``kind`` of the model trained from experiment config ``config``."""

    kind: str  # "model", "separator", "peer", "measured" or "classifier"
    config: str = ""
    peer: str | None = None

    def describe(self) -> str:
        if self.kind == "classifier":
            return "the MNIST classifier"
        what = {"model": "model", "measured": "separator of measurements"}
        return f"{self.config} {self.peer or what.get(self.kind, self.kind)}"

    def run(self, context: Context) -> None:
        if self.kind == "classifier":
            context.classifier()
            return
        trained = context.trained(context.config(self.config))
        profile = context.profile
        if self.kind == "separator":
            context.separator(trained, context.separator_options(trained))
        elif self.kind == "peer":
            context.separator(trained, profile.separator, self.peer)
        elif self.kind == "measured":
            measurements = profile.cs_separator_measurements
            context.measured_separator(trained, profile.cs_separator, measurements)


@dataclass
class _Plan:
    """The steps of one experiment, released as the steps they read finish."""

    experiment: Experiment
    planner: Context

    def first(self) -> list[Step]:
        """Steps that read nothing trained: the models and the classifier."""
        models = [Step("model", config) for config in self._configs()]
        return models + ([Step("classifier")] if self.experiment.classifier else [])

    def after(self, step: Step) -> Iterator[Step]:
        """The steps that ``step``, just finished, lets start."""
        if step.kind == "model":
            if step.config in self._separated() or step.config in self._measured():
                yield Step("separator", step.config)  # a cs separator's teacher too
            if self._separated().get(step.config):
                yield from (Step("peer", step.config, k) for k in PEERS if k not in TEACHERS)
        elif step.kind == "peer":
            taught = (k for k, teacher in TEACHERS.items() if teacher == step.peer)
            yield from (Step("peer", step.config, k) for k in taught)
        elif step.kind == "separator" and step.config in self._measured():
            yield Step("measured", step.config)  # taught by the separator of whole mixtures

    def folder(self, step: Step) -> tuple[str, str]:
        """What a step writes: two peer steps of models that share their peers write one."""
        if step.kind != "peer":
            return (step.kind, step.config)
        trained = self.planner.trained(self.planner.config(step.config))
        return ("peer", str(self.planner.separator_folder(trained, step.peer)))

    def _configs(self) -> list[str]:
        named = [*self.experiment.configs, *self._separated(), *self._measured()]
        return list(dict.fromkeys(named))

    def _separated(self) -> dict[str, bool]:
        return dict(self.experiment.separators)

    def _measured(self) -> tuple[str, ...]:
        measured = self.planner.profile.cs_separator_measurements
        return self.experiment.measured if measured else ()


def prepare(
    experiment: Experiment, setup: Setup, jobs: int = 1, threads: int | None = None
) -> list[str]:
    """Train (or find) what ``experiment`` declares, ``jobs`` steps at a time; where each model
    came from, once per model. ``threads``: each worker's (default: the cores shared out; one
    job trains in this process on its threads). A failing step stops the others at once (each
    training resumes from its last checkpoint when the command runs again)."""
    planner = setup.context()
    plan = _Plan(experiment, planner)
    if jobs == 1:
        return _in_order(plan, planner)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    worker_setup = replace(setup, progress=False)
    lines: dict[str, str] = {}
    pending, claimed, running = list(plan.first()), set(), 0
    results: queue.SimpleQueue = queue.SimpleQueue()
    pool = worker_pool(jobs)
    try:
        while pending or running:
            while pending and running < jobs:
                step = pending.pop(0)
                folder = plan.folder(step)
                if folder in claimed:
                    continue  # another model's step trains (or trained) the same peer
                claimed.add(folder)
                pool.apply_async(
                    _work,
                    (step, worker_setup, threads),
                    callback=lambda found, step=step: results.put((step, found, None)),
                    error_callback=lambda error, step=step: results.put((step, None, error)),
                )
                running += 1
            step, found, error = results.get()
            running -= 1
            if error is not None:
                raise error
            for line in found:
                lines.setdefault(line.split(":")[0], line)
            if setup.progress:  # the workers train without progress bars
                print(f"finished: {step.describe()}", file=sys.stderr, flush=True)
            pending.extend(plan.after(step))
        pool.close()  # the workers exit on their own
    finally:
        pool.terminate()  # after close: at once; after a failure: stops the steps still running
        pool.join()
    return list(lines.values())


def worker_pool(jobs: int) -> Pool:
    """``jobs`` spawned workers, a fresh process per step, each with a thread lock for bars."""
    return get_context("spawn").Pool(jobs, initializer=thread_lock_for_bars, maxtasksperchild=1)


def thread_lock_for_bars() -> None:
    """A worker's first act: tqdm's default lock is a named semaphore, which a worker stopped
    by ``pool.terminate`` (SIGTERM, Ctrl-C, a failing step) never unlinks, so the resource
    tracker warns of it when the command exits; a worker draws no bars and starts no
    processes, so a thread lock serves."""
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def _in_order(plan: _Plan, context: Context) -> list[str]:
    """One step at a time in this process, each as soon as the steps it reads are done."""
    pending = list(plan.first())
    while pending:
        step = pending.pop(0)
        step.run(context)
        pending[:0] = plan.after(step)  # a model's own steps right after it
    return context.provenance


def _work(step: Step, setup: Setup, threads: int) -> list[str]:
    """A worker's step, on ``threads`` threads: where each model it touched came from."""
    import torch

    torch.set_num_threads(threads)
    context = setup.context()
    step.run(context)
    return context.provenance
