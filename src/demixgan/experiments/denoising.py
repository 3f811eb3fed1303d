"""Denoising experiments of the paper: learning digits from corrupted digits (Fig. 2, 3).

A denoising-GAN sees only digits corrupted by a structured family (lines or sines) and draws
that corruption itself; denoise-train shows what its generator learns, denoise-test denoises
unseen digits at corruption levels 1..5 and lets the paper's MNIST classifier read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from demixgan.data.families import get_family
from demixgan.evaluation.classification import accuracy, probabilities
from demixgan.experiments.context import Context
from demixgan.experiments.figures import evolution_figures
from demixgan.experiments.registry import register
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
)


@register(
    "denoise-train",
    "a denoising-GAN learns clean digits from corrupted ones",
    "Fig. 2",
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
        observed = (clean + noise).clamp(0, 1)
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
        "sines at level 1), drawing the known corruption themselves before the discriminator "
        "sees their output: the generator's own output should be clean digits."
    )
    return Outcome(summary, [table], figures, metrics)


@register(
    "denoise-test",
    "denoising unseen digits at corruption levels 1..5",
    "Fig. 3",
    configs=[denoiser.config for denoiser in DENOISERS],
    classifier=True,
)
def denoise_test(context: Context) -> Outcome:
    classifier = context.classifier()
    digits = context.test_digits(context.profile.denoise_digits)
    clean_accuracy = accuracy(classifier, digits.images, digits.labels)
    # The corruption only adds light, so bright pixels the generator cannot explain are let go
    # (benchmarks/denoise_residual.py: at level 5, 81% vs. 59% accuracy on sines).
    fit = replace(context.profile.denoise_fit, residual="nonnegative")
    rows, figures, metrics = [], [], {"clean_accuracy": clean_accuracy, "digits": len(digits)}
    metrics["fit"] = asdict(fit)
    for index, denoiser in enumerate(DENOISERS):
        trained = context.trained(context.config(denoiser.config))
        curves = {
            "accuracy, input": [],
            "accuracy, denoised": [],
            "error, input": [],
            "error, denoised": [],
        }
        examples = []
        for level in LEVELS:
            g = torch.Generator().manual_seed(100 * index + level)
            corrupted = digits.images + get_family(denoiser.family).sample(len(digits), level, g)
            denoised = trained.denoise(corrupted, fit)
            scores = {
                "accuracy, input": accuracy(classifier, corrupted.clamp(0, 1), digits.labels),
                "accuracy, denoised": accuracy(classifier, denoised, digits.labels),
                "error, input": _pixel_error(corrupted, digits.images),
                "error, denoised": _pixel_error(denoised, digits.images),
            }
            for name, value in scores.items():
                curves[name].append(value)
            rows.append(
                [
                    denoiser.family,
                    str(level),
                    f"{scores['accuracy, input']:.1%}",
                    f"{scores['accuracy, denoised']:.1%}",
                    f"{scores['error, input']:.4f}",
                    f"{scores['error, denoised']:.4f}",
                ]
            )
            if level in (1, 3, 5):
                examples += [
                    (f"level {level}: input", corrupted[:8]),
                    (f"level {level}: denoised", denoised[:8]),
                ]
        metrics[denoiser.family] = {
            "levels": list(LEVELS),
            **curves,
            "trained_level": denoiser.level,
        }
        figures += _test_figures(
            context, denoiser, curves, clean_accuracy, digits.images[:8], examples
        )
    table = ResultTable(
        "denoising",
        "MNIST-classifier accuracy and per-pixel error, corrupted input vs. denoised",
        [
            "corruption",
            "level",
            "accuracy, input",
            "accuracy, denoised",
            "pixel error, input",
            "pixel error, denoised",
        ],
        rows,
        f"{len(digits)} held-out digits per family and level; accuracy on the clean digits: "
        f"{clean_accuracy:.1%}. Pixel error: mean squared error per pixel against the clean "
        "digit. Each denoiser was trained at one level (lines 2, sines 1) and is tested at all. "
        "Latent fit with the nonnegative residual (docs/inference.md): the corruption only adds "
        "light.",
    )
    summary = (
        "Unseen test digits corrupted by lines or sines at levels 1..5 are denoised by fitting "
        "the latent of the denoising-GAN trained on that corruption (x = G(z)); the paper's "
        "MNIST classifier then reads the corrupted and the denoised digits."
    )
    return Outcome(summary, [table], figures, metrics)


def _confident_share(classifier, images: torch.Tensor) -> float:
    return probabilities(classifier, images).amax(1).ge(CONFIDENT).float().mean().item()


def _pixel_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return (estimate - truth).pow(2).mean().item()


def _test_figures(context, denoiser, curves, clean_accuracy, clean, examples) -> list[ResultFigure]:
    figures_dir = context.run_dir / "figures"
    accuracy_plot = figures_dir / f"accuracy-{denoiser.family}.png"
    line_plot(
        accuracy_plot,
        LEVELS,
        {
            "denoised": curves["accuracy, denoised"],
            "corrupted input": curves["accuracy, input"],
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
        {"denoised": curves["error, denoised"], "corrupted input": curves["error, input"]},
        xlabel=f"{denoiser.family} corruption level",
        ylabel="per-pixel squared error",
        title=f"digit + {denoiser.family}: reconstruction error",
    )
    grid = figures_dir / f"examples-{denoiser.family}.png"
    save_panels([("clean", clean), *examples], grid, ncol=2, title=f"digit + {denoiser.family}")
    return [
        ResultFigure(accuracy_plot, f"{denoiser.family}: accuracy vs. level"),
        ResultFigure(error_plot, f"{denoiser.family}: per-pixel error vs. level"),
        ResultFigure(
            grid, f"{denoiser.family}: test digits at levels 1, 3, 5 and their denoised versions"
        ),
    ]
