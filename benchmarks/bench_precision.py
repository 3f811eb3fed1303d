"""What a training step costs in float32 and in bfloat16 (``--precision``, ``train.precision``).

Run: ``.venv/bin/python benchmarks/bench_precision.py [--steps 30] [--rounds 3] [--json OUT]``.
On the demo's model and training mixtures, the demo separator's network at its batch trains
``--steps`` bare steps (after one of warm-up; no checkpoint, no MixIT grouping) of its own
teaching (the GAN's draws) and of MixIT's (the costliest peer) in each precision; each round
runs all four one after another in this process, so their ratios share the machine's load.
The median seconds per step over ``--rounds`` are reported, with the speed-up of bfloat16.
How well each precision separates is scored apart, on validation mixtures
(``benchmarks/separator_budget.py``; docs/BENCHMARKS.md). The demo model's GAN step (its config,
``Trainer.train_step``) is timed the same way, in each ``train.precision``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from published import command_line, publish

from demixgan.experiments.demo import DEMO_CONFIG, DEMO_MODEL, asset, shipped_checkpoint
from demixgan.inference.api import load
from demixgan.inference.options import SeparatorOptions
from demixgan.networks.precision import PRECISIONS
from demixgan.reports.experiment import run_record
from demixgan.spec.config import load_config
from demixgan.spec.factory import load_training_data
from demixgan.training.loop import Trainer
from demixgan.training.separator import SeparatorTask

TEACHINGS = ("draws", "mixit")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    record = run_record(command_line())
    trained = load(shipped_checkpoint(DEMO_MODEL))
    mixtures = load_training_data(trained.config).observations
    seconds: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for teaching in TEACHINGS:
            for precision in PRECISIONS:
                options = replace(
                    SeparatorOptions(), steps=args.steps + 1, remix_steps=0, precision=precision
                )
                extra = {"mixtures": mixtures} if teaching == "mixit" else {}
                task = SeparatorTask(trained.model, options, teaching=teaching, **extra)
                task.train_step()  # warm-up: the first step allocates
                started = time.perf_counter()
                for _ in range(args.steps):
                    task.train_step()
                elapsed = (time.perf_counter() - started) / args.steps
                seconds.setdefault(f"{teaching} {precision}", []).append(round(elapsed, 4))
        for precision in PRECISIONS:
            seconds.setdefault(f"gan {precision}", []).append(
                round(gan_step(args.steps, precision), 4)
            )
    median = {key: statistics.median(values) for key, values in seconds.items()}
    figures = {
        **record,
        "threads": torch.get_num_threads(),
        "batch_size": SeparatorOptions().batch_size,
        "seconds_per_step_rounds": seconds,
        "seconds_per_step_median": median,
        "bfloat16_speedup": {
            teaching: round(median[f"{teaching} float32"] / median[f"{teaching} bfloat16"], 2)
            for teaching in (*TEACHINGS, "gan")
        },
    }
    return publish(figures, args.json)


def gan_step(steps: int, precision: str) -> float:
    """Seconds per bare step of the demo model's GAN training (after one of warm-up)."""
    config = load_config(asset(DEMO_CONFIG), [f"train.precision={precision}"])
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config, Path(folder) / "run", device="cpu")
        trainer.train_step()
        started = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        return (time.perf_counter() - started) / steps


if __name__ == "__main__":
    raise SystemExit(main())
