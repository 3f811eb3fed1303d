"""Compressive sensing of corrupted digits with GAN priors vs. LASSO (the paper's Fig. 7).

A digit x corrupted by k random plane waves n is measured as y = A(x + n) with an m x 784
Gaussian A; the digit is recovered with LASSO in the pixel basis (which recovers x + n, as it
has no model of either part) and by fitting latents of three priors through A: a vanilla GAN
trained on clean digits, a denoising-GAN and a demixing-GAN trained on digit + waves (the
digit generator's output is the estimate). The score is the per-pixel squared error against x.
At one m (the issue's target, m = 100) the 2-wave demixing prior is also read by a separator
network trained on its draws through A and on its remixed training mixtures (one pass per
digit, no latent fit; inference/amortized.py).
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from demixgan.data.families import get_family
from demixgan.data.superposition import get_recipe
from demixgan.evaluation.baselines import LASSO_ALPHAS, lasso_recover, tuned_lasso_alpha
from demixgan.evaluation.separation import PSNR_OF_MEAN, score_method
from demixgan.experiments.context import MEAN_DIGIT, Context
from demixgan.experiments.registry import register
from demixgan.models.operators import GaussianOperator, mix
from demixgan.reports.experiment import Outcome, ResultFigure, ResultTable
from demixgan.reports.plots import line_plot
from demixgan.spec.image import MNIST_IMAGE

WAVES = (2, 4)
#: Seed offset of the validation waves that choose LASSO's alpha (apart from the test waves).
VALIDATION_WAVES_SEED = 1000
TUNED_LASSO = "LASSO (alpha chosen on validation)"
#: The corruption under which the separator is trained too (the issue's target: 2 waves).
SEPARATOR_WAVES = 2
SEPARATOR_COLUMN = "demixing-GAN, separator"


def _corrupted(digits: torch.Tensor, level: int, seed: int) -> torch.Tensor:
    """Parts [N, 2, 1, H, W]: each digit and ``level`` plane waves drawn from ``seed``."""
    waves = get_family("waves").sample(len(digits), level, torch.Generator().manual_seed(seed))
    return torch.stack((digits, waves), dim=1)


def _signal(trained) -> int:
    """Where a prior's digit is among its learned parts: the component its recipe draws from
    real images (named by the config, not assumed)."""
    return trained.model.learned.index(get_recipe(trained.config.data.recipe).signals[0])


def _priors(level: int) -> dict[str, str]:
    """Prior name -> experiment config."""
    return {
        "vanilla GAN": "vanilla-digit",
        "denoising-GAN": f"denoise-digit-waves{level}",
        "demixing-GAN": f"demix-digit-waves{level}",
    }


@register(
    "cs",
    configs=dict.fromkeys(config for level in WAVES for config in _priors(level).values()),
    measured=[_priors(SEPARATOR_WAVES)["demixing-GAN"]],
)
def compressive_sensing(context: Context) -> Outcome:
    profile = context.profile
    digits = context.test_digits(profile.cs_images).images
    validation = context.validation_digits(profile.cs_images, "vanilla-digit").images
    mean_digit = context.mean_training_digit()
    rows, figures, metrics = (
        [],
        [],
        {
            "images": len(digits),
            "validation_images": len(validation),
            "measurements": list(profile.cs_measurements),
            "fit_options": asdict(profile.cs_fit),
            "lasso_alphas": {},
            "scores": {},
        },
    )
    for level in WAVES:
        priors = {
            name: context.trained(context.config(config)) for name, config in _priors(level).items()
        }
        truth = _corrupted(digits, level, level)  # never reassigned: every m measures it
        held_out = _corrupted(validation, level, VALIDATION_WAVES_SEED + level)
        curves = {name: [] for name in (MEAN_DIGIT, TUNED_LASSO, *priors)}
        for m in profile.cs_measurements:
            operator = GaussianOperator(m, MNIST_IMAGE, seed=m)
            measurements = mix(truth, operator)
            alpha, errors = tuned_lasso_alpha(
                mix(held_out, operator), operator.matrix, held_out[:, 0]
            )
            metrics["lasso_alphas"][f"waves-{level}-m-{m}"] = {"alpha": alpha, "errors": errors}
            lasso = lasso_recover(measurements, operator.matrix, alpha)
            estimates = {
                MEAN_DIGIT: mean_digit.expand_as(digits),
                TUNED_LASSO: lasso.clamp(0, 1).view_as(digits),
            }
            for name, trained in priors.items():
                recovered = trained.recover(measurements, operator, profile.cs_fit)
                estimates[name] = recovered[:, _signal(trained)]
            for name, estimate in estimates.items():
                curves[name].append((estimate - digits).pow(2).mean().item())
            rows.append([str(level), str(m), *(f"{curves[name][-1]:.4f}" for name in curves)])
            if level == SEPARATOR_WAVES and m == profile.cs_separator_measurements:
                trained = priors["demixing-GAN"]
                metrics["separator"], estimates[SEPARATOR_COLUMN] = _separator_scores(
                    context, trained, operator, measurements, digits, curves
                )
            metrics["scores"][f"waves-{level}-m-{m}"] = {
                name: _digit_scores(estimate, digits) for name, estimate in estimates.items()
            }
        metrics[f"waves-{level}"] = curves
        plot = context.run_dir / "figures" / f"cs-waves{level}.png"
        line_plot(
            plot,
            profile.cs_measurements,
            curves,
            xlabel="measurements m",
            ylabel="per-pixel squared error of the digit",
            title=f"digit + {level} waves, y = A(x + n)",
        )
        figures.append(ResultFigure(plot, f"{level} waves: per-pixel error vs. measurements"))
    table = ResultTable(
        "cs",
        "Per-pixel squared error of the recovered digit",
        ["waves", "m", *curves],
        rows,
        f"{len(digits)} held-out digits per setting, the same digits and waves for every m and "
        f"method; A is m x {MNIST_IMAGE.pixels} with N(0, 1/m) entries (seed m). LASSO (pixel "
        "basis) recovers x + n and is scored against x, as it has no model of the digit; its "
        f"alpha is chosen for each m and level among {list(LASSO_ALPHAS)} on "
        f"{len(validation)} validation digits under other waves (metrics.json: lasso_alphas). "
        "The mean training digit takes no measurement at all.",
    )
    tables = [table]
    if "separator" in metrics:
        tables.append(_separator_table(metrics["separator"], len(digits)))
    if profile.cs_separator_measurements in profile.cs_measurements:
        tables.append(_means_table(metrics["scores"], profile.cs_separator_measurements))
    summary = (
        "Digits corrupted by 2 or 4 random plane waves are measured with a Gaussian matrix and "
        "recovered by LASSO and by fitting the latents of GAN priors through the matrix, and "
        "at one m by a separator network trained for the demixing-GAN prior."
    )
    return Outcome(summary, tables, figures, metrics)


def _separator_scores(
    context, trained, operator, measurements, digits, curves
) -> tuple[dict, torch.Tensor]:
    """A separator for the demixing prior at this operator (stored and reused like every
    model): its digit error beside the fit's and LASSO's (the last entries of ``curves``),
    and its digits."""
    options = context.profile.cs_separator
    m = operator.matrix.shape[0]
    separator = context.measured_separator(trained, options, m)
    estimate = trained.separate(measurements, separator, operator)[:, _signal(trained)]
    error = (estimate - digits).pow(2).mean().item()
    scores = {
        "waves": SEPARATOR_WAVES,
        "m": m,
        "error": error,
        "LASSO": curves[TUNED_LASSO][-1],
        "mean digit": curves[MEAN_DIGIT][-1],
        "fit": curves["demixing-GAN"][-1],
        "options": asdict(options),
        "teacher_options": asdict(context.separator_options(trained)),
    }
    return scores, estimate


def _digit_scores(estimate: torch.Tensor, digits: torch.Tensor) -> dict:
    """The recovered digits' per-image PSNR, MSE and SSIM (mean, std) and the PSNR of the
    mean MSE: both means, as every separation table reports them."""
    return score_method("", estimate[:, None], digits[:, None], ["digit"]).scores["digit"]


def _means_table(scores: dict, m: int) -> ResultTable:
    """Every method at the target m in the two means and SSIM (the error table's mean MSE is
    the second mean's)."""
    rows = [
        [
            key.split("-")[1],
            name,
            f"{score['psnr'][0]:.2f} ± {score['psnr'][1]:.2f}",
            f"{score[PSNR_OF_MEAN][0]:.2f}",
            f"{score['ssim'][0]:.3f} ± {score['ssim'][1]:.3f}",
        ]
        for key, methods in scores.items()
        if key.endswith(f"-m-{m}")
        for name, score in methods.items()
    ]
    return ResultTable(
        "cs-means",
        f"The recovered digit at m = {m}: both means of PSNR (dB) and SSIM",
        ["waves", "method", "PSNR (per-image mean ± std)", "PSNR of the mean MSE", "SSIM"],
        rows,
        "The same digits, waves and estimates as above (the separator only under "
        f"{SEPARATOR_WAVES} waves). The per-image mean PSNR weighs each digit alike; the PSNR "
        "of the mean MSE is the error table's number in dB.",
    )


def _separator_table(scores: dict, images: int) -> ResultTable:
    return ResultTable(
        "cs-separator",
        f"One pass at m = {scores['m']}: a separator network for the demixing-GAN prior",
        [
            "waves",
            "m",
            MEAN_DIGIT,
            TUNED_LASSO,
            "demixing-GAN (latent fit)",
            SEPARATOR_COLUMN,
            "best floor / separator",
        ],
        [
            [
                str(scores["waves"]),
                str(scores["m"]),
                f"{scores['mean digit']:.4f}",
                f"{scores['LASSO']:.4f}",
                f"{scores['fit']:.4f}",
                f"{scores['error']:.4f}",
                f"{min(scores['LASSO'], scores['mean digit']) / scores['error']:.2f}x",
            ]
        ],
        f"The same {images} digits and waves as above. The separator learned the prior's own "
        f"draws measured through A ({scores['options']['steps']} steps), then "
        f"{scores['options']['remix_steps']} steps of remixing the prior's training mixtures "
        f"(a share {scores['options']['remix_fraction']} of each batch), split by the prior's "
        "own separator of whole mixtures; no clean digit is used; its options were chosen on "
        "validation digits (docs/reproduce.md), its training time is in the provenance. "
        "Per-pixel squared error of the digit.",
    )
