"""What limits the generator priors of ``reproduce cs`` at m = 100 (2 waves)?

Run: ``.venv/bin/python benchmarks/cs_prior_limits.py STORE --data-dir ../shared/data/mnist
[--prior demixing|denoising+waves] [--fits 100:4:0 784:4:0 100:10:0 100:4:0.1]``, STORE the
checkpoint store of ``demixgan reproduce cs``. Each fit ``m:restarts:lambda`` recovers the
same 50 seeded MNIST test digits plus 2 plane waves as cs (300 Adam iterations, lr 0.05) from
m Gaussian measurements (m = 784: the image itself) and prints the digit's per-pixel error.
``demixing``: the demixing-GAN's digit and wave generators; ``denoising+waves``: the
denoising-GAN's digit generator beside the waves family fitted by its own formula.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from demixgan.data.families import get_family
from demixgan.experiments.context import Context
from demixgan.experiments.profiles import get_profile
from demixgan.inference.api import load
from demixgan.inference.solver import fit_latents
from demixgan.models.operators import GaussianOperator, IdentityOperator

LEVEL = 2
PIXELS = 28 * 28


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--prior", choices=("demixing", "denoising+waves"), default="demixing")
    parser.add_argument("--fits", nargs="+", default=["100:4:0", "784:4:0", "100:10:0"])
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    profile = get_profile("cpu")
    context = Context(profile, Path("."), args.store, args.data_dir, progress=False)
    digits = context.test_digits(profile.cs_images).images
    waves = get_family("waves").sample(len(digits), LEVEL, torch.Generator().manual_seed(LEVEL))
    config = "demix" if args.prior == "demixing" else "denoise"
    trained = load(next(args.store.glob(f"{config}-digit-waves{LEVEL}-*")))
    model = trained.model if args.prior == "demixing" else trained.model.with_known_fitted(LEVEL)
    digit = model.learned.index("digit")
    for spec in args.fits:
        m, restarts, weight = spec.split(":")
        options = dataclasses.replace(
            profile.cs_fit, restarts=int(restarts), latent_weight=float(weight)
        )
        operator = (
            IdentityOperator()
            if int(m) == PIXELS
            else GaussianOperator(int(m), PIXELS, seed=int(m))
        )
        fit = fit_latents(
            model, operator(digits + waves), operator=operator, **dataclasses.asdict(options)
        )
        error = (fit.components[:, digit] - digits).pow(2).mean().item()
        print(f"{args.prior} m {m}, {restarts} restarts, lambda {weight}: digit error {error:.4f}")


if __name__ == "__main__":
    main()
