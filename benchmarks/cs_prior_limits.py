"""What limits the generator priors of ``reproduce cs`` at m = 100 (2 waves)?

Run: ``.venv/bin/python benchmarks/cs_prior_limits.py STORE --data-dir ../shared/data/mnist
[--prior demixing|denoising+waves] [--fits 100:4:0 784:4:0 100:10:0 100:4:0.1]``, STORE the
checkpoint store of ``demixgan reproduce cs``. Each fit ``m:restarts:lambda[:combine]``
recovers the same 50 seeded MNIST test digits plus 2 plane waves as cs (300 Adam iterations,
lr 0.05) from m Gaussian measurements (m = 784: the image itself) and prints the digit's
per-pixel error (combine: best, the default, or weighted: the restarts averaged).
``demixing``: the demixing-GAN's digit and wave generators; ``denoising+waves``: the
denoising-GAN's digit generator beside the waves family fitted by its own formula.
``--restart-means 4 10 30`` instead fits m = 100 with single-restart fits from seeds 0..R-1
and prints, for each R, the error of the best of the R digits (lowest measurement error),
of their mean, and of their mean weighted as the solver's ``combine = "weighted"`` does.
``--separator STEPS:REMIX`` instead trains a separator network for m = 100 (inference/
amortized.py): STEPS on the prior's own draws measured through A, then REMIX steps of
remixing the prior's training mixtures (digit + 2 waves) measured through A, and prints the
digit's error after the draws and after every 250 remixing steps. With ``--teacher
STEPS:REMIX`` a separator of whole mixtures (that budget) splits the training mixtures for the
remixing instead of the network itself (what ``train_model_separator(trained, operator=A)``
does), and its own digit error on the whole test images is printed first.
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
from demixgan.inference.solver import COMBINE_SHARPNESS, fit_latents
from demixgan.models.operators import GaussianOperator, IdentityOperator

LEVEL = 2
PIXELS = 28 * 28


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--prior", choices=("demixing", "denoising+waves"), default="demixing")
    parser.add_argument("--fits", nargs="+", default=["100:4:0", "784:4:0", "100:10:0"])
    parser.add_argument("--data-dir")
    parser.add_argument("--restart-means", type=int, nargs="+", metavar="R")
    parser.add_argument("--separator", metavar="STEPS:REMIX")
    parser.add_argument("--teacher", metavar="STEPS:REMIX")
    args = parser.parse_args()
    profile = get_profile("cpu")
    context = Context(profile, Path("."), args.store, args.data_dir, progress=False)
    digits = context.test_digits(profile.cs_images).images
    waves = get_family("waves").sample(len(digits), LEVEL, torch.Generator().manual_seed(LEVEL))
    config = "demix" if args.prior == "demixing" else "denoise"
    trained = load(next(args.store.glob(f"{config}-digit-waves{LEVEL}-*")))
    model = trained.model if args.prior == "demixing" else trained.model.with_known_fitted(LEVEL)
    digit = model.learned.index("digit")
    if args.restart_means:
        _restart_means(model, digit, digits, digits + waves, profile, args.restart_means)
        return
    if args.separator:
        steps, remix = (int(part) for part in args.separator.split(":"))
        digit = model.names.index("digit")
        teacher = _teacher(trained, digit, digits, digits + waves, args.teacher)
        _separator(trained, digit, digits, digits + waves, steps, remix, teacher)
        return
    for spec in args.fits:
        m, restarts, weight, *combine = spec.split(":")
        options = dataclasses.replace(
            profile.cs_fit,
            restarts=int(restarts),
            latent_weight=float(weight),
            combine=combine[0] if combine else "best",
        )
        operator = (
            IdentityOperator()
            if int(m) == PIXELS
            else GaussianOperator(int(m), PIXELS, seed=int(m))
        )
        fit = fit_latents(model, operator(digits + waves), options, operator=operator)
        error = (fit.components[:, digit] - digits).pow(2).mean().item()
        print(
            f"{args.prior} m {m}, {restarts} restarts, lambda {weight}, {options.combine}: "
            f"digit error {error:.4f}"
        )


def _restart_means(model, digit, digits, images, profile, counts, m=100) -> None:
    """Best of R restarts against their (weighted) mean, from the same R single-restart fits."""
    operator = GaussianOperator(m, PIXELS, seed=m)
    options = dataclasses.replace(profile.cs_fit, restarts=1)
    fits = [
        fit_latents(
            model, operator(images), dataclasses.replace(options, seed=seed), operator=operator
        )
        for seed in range(max(counts))
    ]
    parts = torch.stack([fit.components[:, digit] for fit in fits], dim=1)
    errors = torch.stack([fit.measurement_error for fit in fits], dim=1)
    for count in sorted(counts):
        x, e = parts[:, :count], errors[:, :count]
        best = x[torch.arange(len(x)), e.argmin(dim=1)]
        weights = torch.softmax(-COMBINE_SHARPNESS * e / e.median(dim=1, keepdim=True).values, 1)
        weighted = (x * weights[:, :, None, None, None]).sum(dim=1)
        scores = {
            name: (estimate - digits).pow(2).mean().item()
            for name, estimate in (("best", best), ("mean", x.mean(1)), ("weighted", weighted))
        }
        print(f"m {m}, R {count}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


def _teacher(trained, digit, digits, images, budget):
    """A separator of whole mixtures (None without ``budget``), its digit error printed."""
    from demixgan.inference.options import SeparatorOptions
    from demixgan.training.separator import train_model_separator

    if budget is None:
        return None
    steps, remix = (int(part) for part in budget.split(":"))
    teacher = train_model_separator(trained, SeparatorOptions(steps=steps, remix_steps=remix))
    error = (teacher.separate(images)[:, digit] - digits).pow(2).mean().item()
    print(f"m {PIXELS}, teacher {steps} steps + {remix} remixing: digit error {error:.4f}")
    return teacher


def _separator(trained, digit, digits, images, steps, remix, teacher, m=100, every=250) -> None:
    """A separator's digit error at m measurements, after the draws and every ``every``
    remixing steps. Each ``every`` steps are one ``train_separator(start=...)`` call with its
    own seed and a fresh optimizer, so the numbers differ from one call of ``remix`` steps."""
    from demixgan.inference.options import SeparatorOptions
    from demixgan.spec.factory import load_training_data
    from demixgan.training.separator import train_separator

    operator = GaussianOperator(m, PIXELS, seed=m)
    measurements = operator(images)
    mixtures = load_training_data(trained.config).observations
    separator = train_separator(
        trained.model, SeparatorOptions(steps=steps, remix_steps=0), operator=operator
    )
    for done in range(0, remix + 1, every):
        if done:
            # The same network remixed on, ``every`` steps (one teacher period) at a time.
            options = SeparatorOptions(steps=steps, remix_steps=every, seed=done)
            separator = train_separator(
                trained.model,
                options,
                operator=operator,
                mixtures=mixtures,
                consistent=teacher is not None,
                start=separator,
                teacher=teacher,
            )
        error = (separator.separate(measurements)[:, digit] - digits).pow(2).mean().item()
        print(f"m {m}, separator {steps} steps + {done} remixing: digit error {error:.4f}")


if __name__ == "__main__":
    main()
