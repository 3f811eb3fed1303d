"""What one training step of each separator teaching costs: the peers' budgets in minutes.

Run: ``.venv/bin/python benchmarks/peer_step_cost.py [--steps 30] [--rounds 3] [--json OUT]``.
On the demo's model and training mixtures, each teaching (training/separator.TEACHINGS: the
GAN's draws, the clean parts of the supervised bound, MixIT, a fixed teacher's remixed splits
for RemixIT's student) trains the demo separator's network at its batch for ``--steps``
steps, ``--rounds`` times; the median seconds per step are reported and their ratio to the
draws'. The peers are given the separator's number of steps, so a ratio above 1 means a peer
had more minutes than the run's separator, not fewer.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

from published import publish

from demixgan.experiments.demo import DEMO_MODEL, shipped_checkpoint
from demixgan.inference.api import load
from demixgan.inference.options import SeparatorOptions
from demixgan.spec.factory import load_training_data, load_training_parts
from demixgan.training.separator import TEACHINGS, train_separator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    trained = load(shipped_checkpoint(DEMO_MODEL))
    mixtures = load_training_data(trained.config).observations
    clean = load_training_parts(trained.config)
    options = replace(SeparatorOptions(), steps=args.steps, remix_steps=0)
    teacher = train_separator(trained.model, replace(options, steps=1))
    seconds: dict[str, list[float]] = {teaching: [] for teaching in TEACHINGS}
    for _ in range(args.rounds):
        for teaching in TEACHINGS:
            extra = {
                "draws": {},
                "clean": {"clean": clean},
                "mixit": {"mixtures": mixtures},
                "teacher": {"mixtures": mixtures, "teacher": teacher},
            }[teaching]
            started = time.perf_counter()
            train_separator(trained.model, options, teaching=teaching, **extra)
            seconds[teaching].append((time.perf_counter() - started) / args.steps)
    median = {teaching: statistics.median(values) for teaching, values in seconds.items()}
    figures = {
        "command": f"python benchmarks/peer_step_cost.py --steps {args.steps} "
        f"--rounds {args.rounds}",
        "batch_size": options.batch_size,
        "seconds_per_step_median": {k: round(v, 4) for k, v in median.items()},
        "seconds_per_step_rounds": {k: [round(x, 4) for x in v] for k, v in seconds.items()},
        "ratio_to_draws": {k: round(v / median["draws"], 2) for k, v in median.items()},
    }
    return publish(figures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
