"""How closely the demo's generators can draw its separator's parts: the bound of any latent fit.

Run: ``.venv/bin/python benchmarks/generator_range.py [--n 100] [--json OUT]``. On ``--n``
mixtures of the validation split (the seed the method choice uses), each shipped generator's
latent is fitted to the shipped separator's part (200 Adam steps x 4 restarts, lr 0.05), and
the fitted G_k(z_k) is scored against the truth and against the part it was fitted to. A fit
through the generators (the latent fit, the refinement) cannot beat what they draw.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from published import publish

from demixgan.data.superposition import make_mixtures
from demixgan.evaluation.metrics import psnr
from demixgan.experiments.demo import DEMO_MODEL, demo_separator, shipped_checkpoint
from demixgan.inference.api import load
from demixgan.inference.choice import CHOICE_SEED
from demixgan.inference.options import FitOptions
from demixgan.inference.solver import fit_latents
from demixgan.spec.factory import run_sampler

FIT = FitOptions(iterations=200, restarts=4, lr=0.05)


def _mean(values) -> float:
    return round(values.mean().item(), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    trained = load(shipped_checkpoint(DEMO_MODEL))
    batch = make_mixtures(run_sampler(trained.config, "validation"), args.n, CHOICE_SEED)
    parts = trained.separate(batch.mixtures, demo_separator())
    figures: dict = {"command": f"python benchmarks/generator_range.py --n {args.n}", "fit": {
        "iterations": FIT.iterations, "restarts": FIT.restarts, "lr": FIT.lr}}  # fmt: skip
    for k, name in enumerate(trained.model.learned):
        drawn = fit_latents(trained.single(name), parts[:, k], FIT).components[:, 0]
        truth = batch.components[:, k]
        figures[name] = {
            "separator_psnr": _mean(psnr(parts[:, k], truth)),
            "generator_fit_to_separator_psnr_vs_truth": _mean(psnr(drawn, truth)),
            "generator_fit_psnr_vs_separator_part": _mean(psnr(drawn, parts[:, k])),
        }
    return publish(figures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
