"""Denoising experiments of the paper: learning digits from corrupted digits (Fig. 2, 3).

A denoising-GAN sees only digits corrupted by a structured family (the paper's lines and sines,
and ink-like strokes that reach 1 like the digits) and draws that corruption itself;
denoise-train shows what its generator learns, denoise-test denoises unseen digits at
corruption levels 1..5 and lets the paper's MNIST classifier read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from demixgan.data.families import get_family
from demixgan.evaluation.classification import accuracy, probabilities
from demixgan.experiments.context import MEAN_DIGIT, Context
from demixgan.experiments.figures import evolution_figures
from demixgan.experiments.registry import register
from demixgan.inference.level import choose_threshold
from demixgan.inference.options import FitOptions
from demixgan.models.operators import ClipOperator, mix
from demixgan.reports.experiment import Outcome, ResultFigure, ResultTable
from demixgan.reports.grids import save_panels
from demixgan.reports.plots import line_plot

LEVELS = (1, 2, 3, 4, 5)
SAMPLES = 32
CONFIDENT = 0.9


@dataclass(frozen=True)
class Denoiser:
    family: str
    level: int  # the corruption level it is trained on (the paper's)
    config: str


DENOISERS = (
    Denoiser("lines", 2, "denoise-digit-lines"),
    Denoiser("sines", 1, "denoise-digit-sines"),
    Denoiser("ink", 1, "denoise-digit-ink"),
)


@register(
    "denoise-train",
    configs=[denoiser.config for denoiser in DENOISERS],
    classifier=True,
)
def denoise_train(context: Context) -> Outcome:
    classifier = context.classifier()
    clean = context.test_digits(SAMPLES * 16).images
    rows, figures, metrics = [], [], {}
    for denoiser in DENOISERS:
        trained = context.trained(context.config(denoiser.config))
        g = torch.Generator().manual_seed(0)
        model, name = trained.model.eval(), trained.model.learned[0]
        with torch.no_grad():
            samples = model.generators[name](model.sample_latents(len(clean), g)[name])
        noise = get_family(denoiser.family).sample(len(clean), denoiser.level, g)
        observed = mix(torch.stack((clean, noise), dim=1), ClipOperator())
        shares = {
            name: _confident_share(classifier, images)
            for name, images in (("clean", clean), ("observed", observed), ("generated", samples))
        }
        metrics[denoiser.family] = {"level": denoiser.level, "confident_share": shares}
        rows.append(
            [f"{denoiser.family} (level {denoiser.level})", *(f"{v:.1%}" for v in shares.values())]
        )
        figures += evolution_figures(context.run_dir, trained, denoiser.family)
        path = context.run_dir / "figures" / f"samples-{denoiser.family}.png"
        shown = slice(0, SAMPLES)
        save_panels(
            [
                ("corrupted test digits (as in training)", observed[shown]),
                ("generated G(z)", samples[shown]),
            ],
            path,
            ncol=8,
            title=f"denoising-GAN, digit + {denoiser.family}",
        )
        figures.append(ResultFigure(path, f"{denoiser.family}: what it saw and what it draws"))
    table = ResultTable(
        "digit-likeness",
        f"Images the MNIST classifier reads with confidence >= {CONFIDENT:.0%}",
        ["corruption", "clean test digits", "corrupted observations", "generated G(z)"],
        rows,
        f"Over {len(clean)} images each. A generator that learned the digits, not the "
        "corruption, draws images the classifier reads as confidently as clean digits.",
    )
    summary = (
        "Denoising-GANs trained on corrupted digits only (digit + lines at level 2, digit + "
        "sines and digit + ink-like strokes at level 1), drawing the known corruption "
        "themselves before the discriminator sees their output: the generator's own output "
        "should be clean digits."
    )
    return Outcome(summary, [table], figures, metrics)


@register(
    "denoise-test",
    configs=[denoiser.config for denoiser in DENOISERS],
    separators=[(denoiser.config, False) for denoiser in DENOISERS],
    classifier=True,
)
def denoise_test(context: Context) -> Outcome:
    classifier = context.classifier()
    digits = context.test_digits(context.profile.denoise_digits)
    clean_accuracy = accuracy(classifier, digits.images, digits.labels)
    mean_digit = context.mean_training_digit().expand_as(digits.images)
    fits = _denoise_fits(context.profile.denoise_fit)
    rows, figures, metrics = [], [], {"clean_accuracy": clean_accuracy, "digits": len(digits)}
    metrics["fit"] = {name: asdict(options) for name, options in fits.items()}
    tried = context.profile.denoise_tried_levels
    for index, denoiser in enumerate(DENOISERS):
        trained = context.trained(context.config(denoiser.config))
        separator = context.separator(trained, context.separator_options(trained))
        validation = context.validation_digits(context.profile.denoise_digits, denoiser.config)
        threshold, shares = _level_threshold(context, trained, denoiser, validation.images, fits)
        curves: dict[str, list[float]] = {}
        examples: list[tuple[str, torch.Tensor]] = []
        for level in LEVELS:
            corrupted = _corrupt(digits.images, denoiser.family, level, 100 * index + level)
            estimates = {
                "input": corrupted,
                PAPER_ESTIMATE: trained.denoise(corrupted, fits[PAPER_ESTIMATE]),
            }
            by_level = trained.fit_levels(corrupted, tried, fits[GIVEN_ESTIMATE])
            chosen, estimated = by_level.select(threshold)
            given = by_level.fits.get(level) or trained.fit_with_corruption(
                corrupted, level, fits[GIVEN_ESTIMATE]
            )
            for name, fit in ((GIVEN_ESTIMATE, given), (ESTIMATED, estimated)):
                estimates[name] = trained.denoise_estimates(corrupted, fit)["subtract"]
            estimates[SEPARATED] = trained.separate(corrupted, separator)[:, 0]
            estimates[MEAN_DIGIT] = mean_digit  # the floor: reads no input
            curves.setdefault("level estimated right", []).append(
                (chosen == level).float().mean().item()
            )
            # The classifier reads images in [0, 1]; the error is against the raw input.
            accuracies = {
                name: accuracy(classifier, images.clamp(0, 1), digits.labels)
                for name, images in estimates.items()
            }
            errors = {
                name: _pixel_error(images, digits.images) for name, images in estimates.items()
            }
            for name in estimates:
                curves.setdefault(f"accuracy, {name}", []).append(accuracies[name])
                curves.setdefault(f"error, {name}", []).append(errors[name])
            rows.append(
                [
                    denoiser.family,
                    str(level),
                    *(f"{value:.1%}" for value in accuracies.values()),
                    *(f"{value:.4f}" for value in errors.values()),
                    f"{curves['level estimated right'][-1]:.1%}",
                ]
            )
            if level in (1, 3, 5):
                examples += [("clean", digits.images[:8])]
                examples += [
                    (f"level {level}: {name}", images[:8].clamp(0, 1))
                    for name, images in estimates.items()
                    if name != MEAN_DIGIT
                ]
        metrics[denoiser.family] = {
            "separator": asdict(context.separator_options(trained)),
            "level_threshold": {"chosen": threshold, "validation_share_right": shares},
            "levels": list(LEVELS),
            **curves,
            "trained_level": denoiser.level,
        }
        figures += _test_figures(context, denoiser, curves, clean_accuracy, examples)
    estimates = ["input", PAPER_ESTIMATE, GIVEN_ESTIMATE, ESTIMATED, SEPARATED, MEAN_DIGIT]
    table = ResultTable(
        "denoising",
        "MNIST-classifier accuracy and per-pixel error: corrupted input, the paper's estimate "
        "G(z), and the input minus the fitted corruption",
        [
            "corruption",
            "level",
            *(f"accuracy, {name}" for name in estimates),
            *(f"pixel error, {name}" for name in estimates),
            "level estimated right",
        ],
        rows,
        f"{len(digits)} held-out digits per family and level; accuracy on the clean digits: "
        f"{clean_accuracy:.1%}. Pixel error: mean squared error per pixel against the clean "
        "digit. Each denoiser was trained at one level (lines 2, sines and ink 1) and is tested "
        "at all. "
        f"'{PAPER_ESTIMATE}': the latent of G alone fitted with the nonnegative residual "
        f"(docs/inference.md: the corruption only adds light). '{GIVEN_ESTIMATE}': G and the "
        "known corruption (as many curves or lines as the level) fitted together, the curves "
        "started where a search of a curve dictionary puts them (three rounds, "
        f"inference/stroke_search.py), and the input minus the fitted corruption kept. "
        f"'{ESTIMATED}': the level is never given. Lines: the relaxed lines fit lights any "
        f"rows and columns and counts them. Sines and ink: the same fit at the largest level of "
        f"{list(tried)}, each image then dropping, one at a time, the curve whose removal "
        "raises its residual least while that rise is below a threshold chosen on "
        f"{len(validation)} validation digits per level (inference/level.py; metrics.json: "
        f"level_threshold). '{SEPARATED}': the denoiser's separator network in one pass, "
        "trained on the denoising-GAN's draws beside the known corruption drawn at a level "
        f"from 1 to {max(tried)} per image, then by remixing the training observations "
        "(training/separator.py; no clean digit). "
        f"'{MEAN_DIGIT}': the mean of the clean training digits for every input, the floor "
        "that reads no input (what a denoiser must beat on pixel error).",
    )
    summary = (
        "Unseen test digits corrupted by lines, sines or ink-like strokes at levels 1..5 are "
        "denoised with the denoising-GAN trained on that corruption, as the paper does (fit "
        "G's latent, x = G(z)), with the known corruption fitted beside G (x = u - n), and by "
        "the denoiser's separator network, never told the level; the paper's MNIST classifier "
        "then reads the corrupted and the denoised digits."
    )
    return Outcome(summary, [table], figures, metrics)


PAPER_ESTIMATE = "G(z)"
GIVEN_ESTIMATE = "u - n fitted, level given"
ESTIMATED = "u - n fitted, level estimated"
SEPARATED = "separator, level never given"
#: Seed offset of the validation corruption that chooses the level threshold.
VALIDATION_CORRUPTION_SEED = 10_000


def _denoise_fits(options: FitOptions) -> dict[str, FitOptions]:
    """Fit options of G alone (``PAPER_ESTIMATE``) and of G beside the known corruption.

    G alone cannot draw the corruption, so its fit discounts bright pixels it leaves
    unexplained; with the corruption fitted too everything is modelled, so the residual is
    the plain l2. Both chosen on validation digits at level 5 (benchmarks/denoise_residual.py,
    docs/BENCHMARKS.md): mean accuracy over lines, sines and ink 74.3% nonnegative vs. 56.7%
    l2 for G alone, 98.7% l2 vs. 94.0% nonnegative with the corruption fitted.
    """
    return {
        PAPER_ESTIMATE: replace(options, residual="nonnegative"),
        GIVEN_ESTIMATE: replace(options, residual="l2"),
    }


def _corrupt(images: torch.Tensor, family: str, level: int, seed: int) -> torch.Tensor:
    noise = get_family(family).sample(len(images), level, torch.Generator().manual_seed(seed))
    return mix(torch.stack((images, noise), dim=1))


def validation_corrupted(images: torch.Tensor, denoiser: Denoiser, level: int) -> torch.Tensor:
    """Validation digits under ``denoiser``'s corruption at ``level``: the draws (other seeds
    than the test's) on which the level threshold and the level estimator are chosen."""
    return _corrupt(images, denoiser.family, level, validation_seed(denoiser, level))


def validation_seed(denoiser: Denoiser, level: int) -> int:
    """The seed of ``validation_corrupted``'s draws (a benchmark redraws their parameters)."""
    return VALIDATION_CORRUPTION_SEED + 100 * DENOISERS.index(denoiser) + level


def _level_threshold(context, trained, denoiser: Denoiser, images: torch.Tensor, fits) -> tuple:
    """The level threshold chosen on validation digits corrupted at every level of
    ``LEVELS`` (other draws than the test's), and each threshold's share of levels right."""
    tried = context.profile.denoise_tried_levels
    validation = []
    for level in LEVELS:
        corrupted = validation_corrupted(images, denoiser, level)
        validation.append((trained.fit_levels(corrupted, tried, fits[GIVEN_ESTIMATE]), level))
    return choose_threshold(validation)


def _confident_share(classifier, images: torch.Tensor) -> float:
    return probabilities(classifier, images).amax(1).ge(CONFIDENT).float().mean().item()


def _pixel_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return (estimate - truth).pow(2).mean().item()


def _test_figures(context, denoiser, curves, clean_accuracy, examples) -> list[ResultFigure]:
    figures_dir = context.run_dir / "figures"
    accuracy_plot = figures_dir / f"accuracy-{denoiser.family}.png"
    estimates = [key.removeprefix("accuracy, ") for key in curves if key.startswith("accuracy")]
    line_plot(
        accuracy_plot,
        LEVELS,
        {
            **{name: curves[f"accuracy, {name}"] for name in estimates},
            "clean digits": [clean_accuracy] * len(LEVELS),
        },
        xlabel=f"{denoiser.family} corruption level",
        ylabel="classifier accuracy",
        title=f"digit + {denoiser.family}: accuracy",
    )
    error_plot = figures_dir / f"error-{denoiser.family}.png"
    line_plot(
        error_plot,
        LEVELS,
        {name: curves[f"error, {name}"] for name in estimates},
        xlabel=f"{denoiser.family} corruption level",
        ylabel="per-pixel squared error",
        title=f"digit + {denoiser.family}: reconstruction error",
    )
    grid = figures_dir / f"examples-{denoiser.family}.png"
    shown = [name for name in estimates if name != MEAN_DIGIT]  # the same image everywhere
    save_panels(  # a row per level: clean, input and each estimate, 8 digits in 4 x 2
        examples, grid, ncol=4, per_row=1 + len(shown), title=f"digit + {denoiser.family}"
    )
    return [
        ResultFigure(accuracy_plot, f"{denoiser.family}: accuracy vs. level"),
        ResultFigure(error_plot, f"{denoiser.family}: per-pixel error vs. level"),
        ResultFigure(
            grid, f"{denoiser.family}: test digits at levels 1, 3, 5 and their denoised versions"
        ),
    ]
