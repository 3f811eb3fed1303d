"""Two trainings side by side on one thread each against one after the other on every thread.

Run: ``.venv/bin/python benchmarks/bench_jobs.py [--config PATH] [--steps N] [--rounds R]
[--json OUT]``. What ``demixgan reproduce --jobs 2`` rests on: two GAN trainings of CONFIG
(default digits 1 + 2, the paper's demix-train setting) for N steps each, (a) one after the
other in a process on all the machine's threads, (b) at once in two processes on
cores / 2 threads each, as ``--jobs 2`` runs them. Each round times both; the figures are the
medians over the rounds and their ratio. Epoch-end grids and checkpoints are off (they are
the same in both), so the steps are what is timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from multiprocessing import get_context
from multiprocessing.pool import Pool
from pathlib import Path

import torch
from published import command_line, publish

from demixgan.reports.experiment import run_record
from demixgan.spec.config import load_config
from demixgan.training.loop import train

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "src" / "demixgan" / "assets" / "experiments" / "demix-digits-1-2.toml"


def one_training(config: Path, steps: int, seed: int, threads: int) -> float:
    """Seconds of one training of ``steps`` steps on ``threads`` threads (in a temp run)."""
    torch.set_num_threads(threads)
    settings = [
        f"train.max_steps={steps}",
        f"train.epochs={steps}",
        f"seed={seed}",
        "train.snapshot_every_epoch=false",
        "train.checkpoint_every_epoch=false",
        f"train.checkpoint_every={steps}",
    ]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        train(load_config(config, settings), Path(folder) / "run", progress=False)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    record = run_record(command_line())
    cores = os.cpu_count() or 2
    spawn = get_context("spawn")
    after, beside = [], []
    for _ in range(args.rounds):
        with spawn.Pool(1) as pool:  # a fresh process, as each --jobs step gets
            after.append(
                sum(pool.apply(one_training, (args.config, args.steps, s, cores)) for s in (0, 1))
            )
            _closed(pool)
        with spawn.Pool(2) as pool:
            started = time.perf_counter()
            jobs = [
                pool.apply_async(one_training, (args.config, args.steps, s, max(1, cores // 2)))
                for s in (0, 1)
            ]
            for job in jobs:
                job.get()
            beside.append(time.perf_counter() - started)
            _closed(pool)
    figures = {
        **record,
        "config": _shown(args.config),
        "steps_each": args.steps,
        "cores": cores,
        "one_after_the_other_s": [round(t, 1) for t in after],
        "side_by_side_s": [round(t, 1) for t in beside],
        "median_one_after_the_other_s": round(statistics.median(after), 1),
        "median_side_by_side_s": round(statistics.median(beside), 1),
        "speedup": round(statistics.median(after) / statistics.median(beside), 2),
    }
    return publish(figures, args.json)


def _closed(pool: Pool) -> None:
    """Let the workers exit on their own: one terminated (the pool's ``with`` does that) leaves
    tqdm's lock behind, which Python reports as leaked semaphores at exit."""
    pool.close()
    pool.join()


def _shown(config: Path) -> str:
    """The config as a figures file may name it: inside the repository, not this machine."""
    config = config.resolve()
    return config.relative_to(REPO).as_posix() if config.is_relative_to(REPO) else config.name


if __name__ == "__main__":
    raise SystemExit(main())
