"""How well can each generator of a demixing run draw its own clean part? (its coverage)

Run: ``.venv/bin/python benchmarks/fit_components_alone.py RUN_DIR [--n 40]``. Fits each
learned generator alone to the matching clean component of ``--n`` embedded-test digit + sines
mixtures (6 restarts x 300 iterations, lr 0.05, smoothing 2) and prints its PSNR. A generator
that cannot draw its part even alone limits the separation, whatever the fit of the mixture.
"""

from __future__ import annotations

import argparse

from demixgan.data.superposition import build_sampler, make_mixtures
from demixgan.evaluation.metrics import psnr
from demixgan.inference.loading import load_model
from demixgan.inference.options import FitOptions
from demixgan.inference.solver import fit_latents
from demixgan.models.superposition_model import LearnedComponent, SuperpositionModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()
    model, config = load_model(args.run)
    sampler = build_sampler(config.data.recipe, level=config.data.level, split="test")
    batch = make_mixtures(sampler, args.n, seed=1)
    for k, name in enumerate(sampler.names):
        alone = SuperpositionModel([LearnedComponent(name, model.generators[name])])
        fit = fit_latents(
            alone,
            batch.components[:, k],
            FitOptions(iterations=300, restarts=6, lr=0.05, smoothing=2.0),
        )
        score = psnr(fit.components[:, 0], batch.components[:, k]).mean().item()
        print(f"{name}: {score:.2f} dB alone ({args.n} embedded-test parts)")


if __name__ == "__main__":
    main()
