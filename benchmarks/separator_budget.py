"""The ink separator's budget, chosen on validation mixtures: ours and the bound per budget.

Run: ``.venv/bin/python benchmarks/separator_budget.py --budget STEPS:REMIX[:FRACTION] ...
[--bound] [--shipped] [--threads N] [--json OUT]``. On the demo's model (digit + ink), each
budget trains the run's separator (the GAN's draws for STEPS, then remixing the training
mixtures for REMIX steps with FRACTION of each batch real) and, with ``--bound``, the same
network on the clean parts for STEPS + REMIX steps (the supervised upper bound at the same
budget). ``--shipped`` scores the shipped separator and bound (1,500 + 500) without training.
Every network is scored on the same 500 mixtures of the validation split that choose a run's
method (inference/choice.py): per part the mean PSNR, and the bound's lead over ours. The
test split is never read.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
from published import publish

from demixgan.data.superposition import make_mixtures
from demixgan.evaluation.metrics import psnr
from demixgan.experiments.demo import (
    DEMO_MODEL,
    DEMO_SEPARATOR,
    demo_peers,
    demo_separator,
    shipped_checkpoint,
)
from demixgan.inference.api import load
from demixgan.inference.choice import CHOICE_MIXTURES, CHOICE_SEED
from demixgan.spec.factory import run_sampler
from demixgan.training.separator import train_model_separator, train_peer


def budget(text: str) -> tuple[int, int, float]:
    fields = text.split(":")
    if len(fields) not in (2, 3):
        raise argparse.ArgumentTypeError(f"a budget is STEPS:REMIX[:FRACTION], not {text!r}")
    fraction = float(fields[2]) if len(fields) == 3 else DEMO_SEPARATOR.remix_fraction
    return int(fields[0]), int(fields[1]), fraction


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=budget, nargs="*", default=[])
    parser.add_argument("--bound", action="store_true", help="also train the bound per budget")
    parser.add_argument("--shipped", action="store_true", help="score the shipped pair first")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    trained = load(shipped_checkpoint(DEMO_MODEL))
    batch = make_mixtures(run_sampler(trained.config, "validation"), CHOICE_MIXTURES, CHOICE_SEED)
    names = trained.component_names

    def scores(separator) -> dict[str, float]:
        parts = trained.separate(batch.mixtures, separator)
        return {
            name: round(psnr(parts[:, k], batch.components[:, k]).mean().item(), 4)
            for k, name in enumerate(names)
        }

    rows = []
    if args.shipped:
        row = {"budget": "shipped", "options": vars_of(DEMO_SEPARATOR)}
        row["ours"], row["bound"] = scores(demo_separator()), scores(demo_peers()["supervised"])
        rows.append(with_gap(row))
    for steps, remix, fraction in args.budget:
        options = replace(DEMO_SEPARATOR, steps=steps, remix_steps=remix, remix_fraction=fraction)
        row = {"budget": f"{steps}:{remix}:{fraction:g}", "options": vars_of(options)}
        started = time.perf_counter()
        row["ours"] = scores(train_model_separator(trained, options))
        row["ours_seconds"] = round(time.perf_counter() - started, 1)
        if args.bound:
            started = time.perf_counter()
            row["bound"] = scores(train_peer(trained, "supervised", options))
            row["bound_seconds"] = round(time.perf_counter() - started, 1)
        rows.append(with_gap(row))
        print(rows[-1], flush=True)
    budgets = " ".join(f"{s}:{r}:{f:g}" for s, r, f in args.budget)
    figures = {
        "command": "python benchmarks/separator_budget.py"
        + (f" --budget {budgets}" if budgets else "")
        + (" --bound" if args.bound else "")
        + (" --shipped" if args.shipped else "")
        + (f" --threads {args.threads}" if args.threads else ""),
        "validation": {"mixtures": CHOICE_MIXTURES, "seed": CHOICE_SEED, "split": "validation"},
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    return publish(figures, args.json)


def vars_of(options) -> dict:
    return {
        "steps": options.steps,
        "remix_steps": options.remix_steps,
        "remix_fraction": options.remix_fraction,
    }


def with_gap(row: dict) -> dict:
    """The bound's lead over ours per part, where both were scored."""
    if "bound" in row:
        row["bound_lead"] = {k: round(row["bound"][k] - row["ours"][k], 4) for k in row["ours"]}
    return row


if __name__ == "__main__":
    raise SystemExit(main())
