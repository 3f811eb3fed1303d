"""The cs experiment's settings chosen on validation digits: the fit's averaging, the separator.

Run: ``python benchmarks/cs_choices.py --data-dir ../shared/data/mnist [--checkpoints STORE]
[--separators 2000:1000:0.5 2000:1000:1] [--json OUT]``. At the cs profile's separator m
(100), on the cs profile's number of validation digits under waves of other seeds than the
test's (the digits and waves that choose LASSO's alpha in ``reproduce cs``):

- the latent fit's ``combine``: every prior of ``reproduce cs`` at 2 and 4 waves fitted with
  the cs fit options, once keeping the best restart (``best``, the paper's) and once averaging
  the restarts by fit (``weighted``); the choice has the lower mean digit error over the six
  (prior, waves) fits;
- the separator of the 2-wave demixing prior's measurements: each candidate STEPS:REMIX:SHARE
  (draw steps, remixing steps, share of real mixtures in a remixing batch) trained into the
  checkpoint store (``Context.measured_separator``, where ``reproduce cs`` finds the chosen one)
  and scored by its digit error; the lower wins, the smaller budget on a tie.

The mean training digit and LASSO (alpha chosen on the same digits) are printed beside them.
Models come from the store (``demixgan reproduce cs --train-only`` trains them). The test
split is never read.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path

from published import command_line, publish

from demixgan.errors import DemixganError
from demixgan.evaluation.baselines import lasso_recover, tuned_lasso_alpha
from demixgan.experiments.compressive import (
    SEPARATOR_WAVES,
    VALIDATION_WAVES_SEED,
    WAVES,
    _corrupted,
    _priors,
    _signal,
)
from demixgan.experiments.context import Context
from demixgan.experiments.profiles import get_profile
from demixgan.inference.options import COMBINES, SeparatorOptions
from demixgan.models.operators import GaussianOperator, mix
from demixgan.reports.experiment import run_record
from demixgan.spec.image import MNIST_IMAGE


def candidate(text: str, base: SeparatorOptions) -> SeparatorOptions:
    """Separator options from ``STEPS:REMIX:SHARE`` over the profile's."""
    try:
        steps, remix, share = text.split(":")
        return replace(base, steps=int(steps), remix_steps=int(remix), remix_fraction=float(share))
    except (TypeError, ValueError) as error:
        raise DemixganError(
            f"a separator candidate is STEPS:REMIX:SHARE, got {text!r} ({error})"
        ) from None


def error_of(estimate, digits) -> float:
    return (estimate - digits).pow(2).mean().item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="directory holding the MNIST IDX files")
    parser.add_argument("--checkpoints", type=Path, default=Path("runs/checkpoints"))
    parser.add_argument("--separators", nargs="*", default=["2000:1000:0.5", "2000:1000:1"])
    parser.add_argument("--profile", default="cpu", help="smoke: checks the pipeline")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    record = run_record(command_line())
    profile = get_profile(args.profile)
    context = Context(profile, Path("."), args.checkpoints, args.data_dir, progress=False)
    digits = context.validation_digits(profile.cs_images, "vanilla-digit").images
    m = profile.cs_separator_measurements
    operator = GaussianOperator(m, MNIST_IMAGE, seed=m)
    mean_digit = error_of(context.mean_training_digit(), digits)
    try:
        candidates = [candidate(text, profile.cs_separator) for text in args.separators]
        floors, fits = {}, {combine: {} for combine in COMBINES}
        for level in WAVES:
            parts = _corrupted(digits, level, VALIDATION_WAVES_SEED + level)
            measured = mix(parts, operator)
            alpha, _ = tuned_lasso_alpha(measured, operator.matrix, digits)
            lasso = lasso_recover(measured, operator.matrix, alpha).clamp(0, 1).view_as(digits)
            floors[f"waves-{level}"] = {
                "mean training digit": mean_digit,
                "LASSO": error_of(lasso, digits),
            }
            for name, config in _priors(level).items():
                trained = context.trained(context.config(config))
                for combine in COMBINES:
                    options = replace(profile.cs_fit, combine=combine)
                    estimate = trained.recover(measured, operator, options)[:, _signal(trained)]
                    fits[combine][f"{name}, waves-{level}"] = error_of(estimate, digits)
            if level == SEPARATOR_WAVES:
                trained = context.trained(context.config(_priors(level)["demixing-GAN"]))
                separators = [
                    {
                        **asdict(options),
                        "error": error_of(
                            trained.separate(
                                measured, context.measured_separator(trained, options, m), operator
                            )[:, _signal(trained)],
                            digits,
                        ),
                    }
                    for options in candidates
                ]
    except DemixganError as error:
        parser.error(str(error))
    means = {combine: sum(errors.values()) / len(errors) for combine, errors in fits.items()}
    figures = {
        **record,
        "validation_digits": len(digits),
        "m": m,
        "fit_options": asdict(profile.cs_fit),
        "floors": floors,
        "fits": fits,
        "fit_mean_error": means,
        "combine_chosen": min(means, key=means.get),
        "separators": separators,
        "separator_chosen": min(
            separators, key=lambda s: (s["error"], s["steps"] + s["remix_steps"])
        ),
        "provenance": context.provenance,
    }
    return publish(figures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
