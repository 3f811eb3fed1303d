"""The inference tasks behind the CLI: read observations, run a task, evaluate on test mixtures."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from demixgan.data.observed import ImageStack, Source, mixture_files, read_mixtures
from demixgan.data.superposition import MixtureBatch, MixtureSampler
from demixgan.errors import DemixganError
from demixgan.evaluation.separation import MethodScore, markdown_table, mean_std, score_method
from demixgan.inference.amortized import Separator
from demixgan.inference.api import TrainedModel, check_finite
from demixgan.inference.methods import PixelRule, build_methods, peer_methods, with_peers
from demixgan.inference.options import DEFAULT_METHODS, MAX_SEED, FitOptions
from demixgan.io.images import read_npy, read_stack
from demixgan.models.operators import GaussianOperator
from demixgan.spec.image import ImageSpec

TASKS = ("denoise", "demix", "cs")
#: An evaluation's largest test set: ten times the MNIST test split, minutes per method.
MAX_TEST_MIXTURES = 100_000
#: Validation mixtures (with their truth) that fit the pixel-value rule, and their seed (apart
#: from every test seed, which is a fit seed + 1).
VALIDATION_MIXTURES = 2000
VALIDATION_SEED = 3_000_017


def prepare_observations(
    trained: TrainedModel,
    inputs: Sequence[str | os.PathLike],
    task: str,
    measurements: int | None = None,
    matrix_seed: int = 0,
) -> tuple[torch.Tensor, GaussianOperator | None, tuple[Source, ...] | None]:
    """Observations of a task from files, the Gaussian operator of ``cs``, and the input image
    each observation came from (None for measurement vectors).

    For ``cs`` the inputs are measurement vectors [N, m] in a ``.npy``, or, with
    ``measurements`` = m, images that are measured here with the seeded m x (C H W) matrix.
    """
    operator = measurement_operator(measurements, matrix_seed, trained.model.image)
    if task != "cs" or operator is not None:
        stack = read_inputs(trained, inputs)
        images = trained.images(stack.floats())
        return (images if operator is None else operator(images)), operator, stack.sources
    is_one_array = len(inputs) == 1 and str(inputs[0]).lower().endswith(".npy")
    stack = torch.from_numpy(read_stack(list(inputs)) if not is_one_array else read_npy(inputs[0]))
    if stack.ndim != 2:
        raise DemixganError(
            f"Without --measurements the cs inputs must be a .npy of measurement vectors "
            f"[N, m], but got shape {tuple(stack.shape)}. Pass --measurements M to measure "
            "images instead."
        )
    return stack, measurement_operator(stack.shape[1], matrix_seed, trained.model.image), None


def read_inputs(trained: TrainedModel, inputs: Sequence[str | os.PathLike]) -> ImageStack:
    """The images of input files and folders, brought to the run's size as its training
    mixtures were (its ``data.resize`` / ``data.crop``), checked against its image spec."""
    files = [
        file
        for path in map(Path, inputs)
        for file in (mixture_files(path) if path.is_dir() else [path])
    ]
    data = trained.config.data
    stack = read_mixtures(files, resize=data.resize, crop=data.crop)
    if stack.image != trained.model.image:
        raise DemixganError(
            f"The inputs are {stack.image.describe()} images, but the checkpoint "
            f"'{trained.checkpoint}' was trained on {trained.model.image.describe()} images, so "
            "its networks cannot separate them. Give images of the run's size and channels, or "
            "train a run on mixtures like these (demixgan train --mixtures DIR ...)."
        )
    return stack


def measurement_operator(
    measurements: int | None, matrix_seed: int, image: ImageSpec
) -> GaussianOperator | None:
    """The seeded m x (C H W) Gaussian matrix of ``--measurements`` (None: none given)."""
    if not 0 <= matrix_seed <= MAX_SEED:
        raise DemixganError(f"--matrix-seed must be from 0 to {MAX_SEED}, got {matrix_seed}.")
    if measurements is None:
        return None
    if not 1 <= measurements <= 10 * image.pixels:
        raise DemixganError(
            f"--measurements must be between 1 and {10 * image.pixels} (ten times the "
            f"{image.pixels} values of a {image.describe()} image), got {measurements}."
        )
    return GaussianOperator(measurements, image, seed=matrix_seed)


def read_truth(
    paths: Sequence[str | os.PathLike] | None, task: str, trained: TrainedModel, n: int
) -> torch.Tensor | None:
    """Ground truth as components [N, K, C, H, W] (K = 1 for clean images)."""
    if not paths:
        return None
    stack = torch.from_numpy(read_stack(list(paths)))
    image = trained.model.image
    if stack.ndim == 4 and image.channels == 1 and tuple(stack.shape[2:]) == image.shape[1:]:
        stack = stack[:, :, None]  # [N, K, H, W] of grey components
    truth = stack if stack.ndim == 5 else trained.images(stack)[:, None]
    if tuple(truth.shape[2:]) != image.shape:
        c, h, w = image.shape
        raise DemixganError(
            f"--truth must hold {image.describe()} images or a .npy [N, K, {c}, {h}, {w}] of "
            f"components, but got shape {tuple(stack.shape)}."
        )
    if truth.shape[0] != n:
        raise DemixganError(
            f"--truth holds {truth.shape[0]} items but the inputs hold {n}; give one truth per "
            "input, in the same order."
        )
    learned = len(trained.model.learned)
    if task == "denoise" and truth.shape[1] != 1:
        c, h, w = image.shape
        raise DemixganError(
            f"--truth holds {truth.shape[1]} components per image, but denoise estimates one "
            f"clean image per input; give the clean images ([N, {c}, {h}, {w}] or PNGs)."
        )
    if task == "demix" and truth.shape[1] != learned:
        raise DemixganError(
            f"--truth holds {truth.shape[1]} components per mixture; the checkpoint separates "
            f"{learned}. Give a .npy [N, {learned}, {', '.join(map(str, image.shape))}]."
        )
    check_finite(truth.flatten(0, 1), "ground truth")
    return truth


def run_inference(
    trained: TrainedModel,
    task: str,
    observations: torch.Tensor,
    operator: GaussianOperator | None,
    options: FitOptions,
    *,
    consistent: bool = True,
    corruption_level: int | str | None = None,
    estimate: str = "generator",
    separator: Separator | None = None,
    method: str | None = None,
    progress: Callable[[float], None] | None = None,
    level_threshold: float | None = None,
) -> torch.Tensor:
    """Estimated components [N, K, C, H, W] of ``task`` (``consistent``: see ``demix``;
    ``corruption_level``, ``estimate`` and ``level_threshold``: see ``denoise``). ``method``
    (inference/choice.py) is ``fit``, ``separator`` (the ``separator`` demixes, or recovers
    the parts from measurements, in one pass) or ``refine`` (its parts start a short fit of
    ``options``); by default the separator where one is given, else the fit. ``progress(k)``
    is called as a latent fit gets through k more observations (inference/solver.py)."""
    method = method or ("fit" if separator is None else "separator")
    if task == "demix":  # a denoiser's separator splits off a corruption: nothing to demix
        trained.require_demixing()
    if method != "fit" and separator is None:
        raise DemixganError(f"The {method} method needs a separator; none was given.")
    if task == "denoise" and method != "fit":
        return _denoise_by_separator(trained, observations, separator, method, corruption_level)
    if task == "denoise":
        return trained.denoise(
            observations,
            options,
            corruption_level=corruption_level,
            estimate=estimate,
            progress=progress,
            level_threshold=level_threshold,
        )[:, None]
    if method == "refine":
        if operator is not None:
            raise DemixganError(
                "Refining starts a fit of whole mixtures from the separator's parts; for "
                "compressive measurements use --method separator or fit."
            )
        return trained.refine(observations, separator, options)
    if method == "separator":
        return trained.separate(observations, separator, operator)
    if task == "demix":
        return trained.demix(observations, options, progress, consistent=consistent)
    if task == "cs":
        return trained.recover(observations, operator, options, progress)
    raise ValueError(f"unknown task {task!r}; known: {TASKS}")


def _denoise_by_separator(trained, observations, separator, method, corruption_level):
    """A denoising-GAN's separator splits the corruption off in one pass, never told its
    level: [N, 1, C, H, W]."""
    if method == "refine":
        raise DemixganError(
            "A denoiser's separator is not refined: a refinement fits G alone, which cannot "
            "explain the corruption. Use --method separator or --method fit."
        )
    if corruption_level is not None:
        raise DemixganError(
            f"--corruption-level {corruption_level} is for the latent fit (how many items to "
            "fit, or auto: chosen per image); the separator never needs it. Leave it out, or "
            "use --method fit."
        )
    return trained.separate(observations, separator)


@dataclass(frozen=True)
class Evaluation:
    """Scores of every method on the same held-out mixtures, and where they came from."""

    checkpoint: str
    recipe: str
    level: int | None
    digits: str
    n: int
    options: dict
    rows: list[MethodScore]
    table: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Separation:
    """The test mixtures of an evaluation and every method's parts [N, K, C, H, W], by row."""

    batch: MixtureBatch
    estimates: dict[str, torch.Tensor]


def evaluate_checkpoint(
    trained: TrainedModel,
    options: FitOptions,
    *,
    n: int = 1000,
    recipe: str | None = None,
    level: int | None = None,
    digit_source: str | None = None,
    data_dir: str | os.PathLike | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    separator: Separator | None = None,
    peers: dict[str, Separator] | None = None,
    refine_options: FitOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Evaluation, Separation]:
    """Separate ``n`` held-out test mixtures by each of ``methods`` (inference/methods.py) and
    score them against the true parts, one row per method; a ``separator`` adds its row, the
    ``peers`` (inference/choice.PEERS: MixIT, RemixIT, the supervised bound) theirs.

    The mixtures are observed as the run's were (clipped, binarized digits or not); the
    pixel-value rule is fitted on ``VALIDATION_MIXTURES`` mixtures of the validation split of
    the run's own digit source (images carved from its training files, never trained on),
    whichever source the test mixtures come from.
    """
    from demixgan.data.superposition import build_sampler, make_mixtures

    if not 1 <= n <= MAX_TEST_MIXTURES:
        raise DemixganError(f"--n must be from 1 to {MAX_TEST_MIXTURES:,} test mixtures, got {n}.")
    if separator is not None and "separator" not in methods:
        methods = (*methods, "separator")
    if level is None and recipe in (None, trained.config.data.recipe):
        level = trained.config.data.level  # another recipe: its own default level
    recipe = recipe or trained.config.data.recipe
    digit_source = digit_source or default_digit_source(data_dir)
    observed = {"binarize": trained.config.data.binarize, "clip": trained.config.data.clip}
    sampler = build_sampler(
        recipe, level=level, split="test", digit_source=digit_source, data_dir=data_dir, **observed
    )
    if len(sampler.names) != len(trained.model.learned):
        raise DemixganError(
            f"The recipe {recipe} has {len(sampler.names)} components but the checkpoint "
            f"separates {len(trained.model.learned)}; pick a recipe with as many components."
        )
    rule = None
    if "pixel-rule" in methods:
        held_out = build_sampler(  # the validation split of the images the run trained on
            recipe,
            level=level,
            split="validation",
            digit_source=trained.config.data.digit_source,
            data_dir=data_dir,
            **observed,
        )
        rule = validation_pixel_rule(held_out)
    chosen = build_methods(
        methods,
        trained,
        options,
        separator=separator,
        pixel_rule=rule,
        refine_options=refine_options,
        progress=progress,
    )
    batch = make_mixtures(sampler, n, options.seed + 1)
    chosen = with_peers(chosen, peer_methods(trained, peers or {}, batch.components))
    estimates, seconds = {}, {}
    for method in chosen:
        started = time.perf_counter()
        estimates[method.name] = method.separate(batch.mixtures)
        seconds[method.name] = (time.perf_counter() - started) / n
    rows = [
        score_method(
            method.name,
            estimates[method.name],
            batch.components,
            sampler.names,
            method.part_names,
            per_mixture=sampler.recipe.exchangeable,
            seconds=seconds[method.name],
        )
        for method in chosen
    ]
    evaluation = Evaluation(
        checkpoint=str(trained.checkpoint),
        recipe=recipe,
        level=level,
        digits=_test_images(sampler.recipe.components, digit_source),
        n=n,
        options=asdict(options),
        rows=rows,
        table=markdown_table(rows, sampler.names, n),
    )
    return evaluation, Separation(batch, estimates)


def validation_pixel_rule(sampler: MixtureSampler) -> PixelRule:
    """The pixel-value rule fitted on ``VALIDATION_MIXTURES`` of a validation sampler."""
    from demixgan.data.superposition import make_mixtures

    validation = make_mixtures(sampler, VALIDATION_MIXTURES, VALIDATION_SEED)
    return PixelRule.fit(validation.mixtures, validation.components, sampler.names)


def _test_images(components, digit_source: str) -> str:
    """Which held-out images the mixtures used ("mnist test split, fashion-mnist test split")."""
    from demixgan.data.superposition import DIGIT_SOURCES

    sources = {
        digit_source if c.source in DIGIT_SOURCES else c.source
        for c in components
        if hasattr(c, "source")
    }
    return ", ".join(f"{source} test split" for source in sorted(sources))


def default_digit_source(data_dir: str | os.PathLike | None) -> str:
    """The MNIST test set where it is on disk (no download), else the embedded test split."""
    from demixgan.data.sources import load_images

    try:
        load_images("mnist", "test", data_dir=data_dir, download=False)
    except DemixganError:
        return "mnist-embedded"
    return "mnist"


@dataclass(frozen=True)
class ObservedEvaluation:
    """Separations of a user's own mixtures: what can be measured without their parts (the
    residual of each mixture, ``y - sum of parts``), and scores where ``--truth`` gives them."""

    checkpoint: str
    mixtures: str
    n: int
    options: dict
    residuals: dict[str, tuple[float, float]]  # method -> RMS residual (mean, std)
    rows: list[MethodScore]
    table: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"


def evaluate_observed(
    trained: TrainedModel,
    options: FitOptions,
    *,
    inputs: Sequence[str | os.PathLike] | None = None,
    truth: Sequence[str | os.PathLike] | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    separator: Separator | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[ObservedEvaluation, torch.Tensor, dict[str, torch.Tensor]]:
    """Separate observed mixtures (``inputs``; default: the run's held-out validation part) by
    each method: the RMS residual of every mixture per method, and with ``truth`` the
    PSNR / MSE / SSIM of each part. Returns the evaluation, the mixtures and every method's
    parts [N, K, C, H, W]."""
    from demixgan.spec.factory import load_training_data

    if separator is not None and "separator" not in methods:
        methods = (*methods, "separator")
    if inputs:
        mixtures, where = (
            trained.images(read_inputs(trained, inputs).floats()),
            ", ".join(map(str, inputs)),
        )
    else:
        if trained.config.data.mixtures is None:
            raise DemixganError(
                "The checkpoint was trained on a recipe's mixtures, which 'evaluate' draws "
                "itself: give --mixtures DIR only for a run on your own mixtures (train "
                "--mixtures), or leave it out."
            )
        validation = load_training_data(trained.config).validation
        if validation is None or not len(validation):
            raise DemixganError(
                "The run held out no validation mixtures (data.validation_share = 0): give "
                "mixtures to evaluate with --mixtures DIR."
            )
        mixtures, where = validation.floats(), "the run's held-out validation mixtures"
    parts_truth = read_truth(truth, "demix", trained, mixtures.shape[0]) if truth else None
    chosen = build_methods(methods, trained, options, separator=separator, progress=progress)
    estimates = {method.name: method.separate(mixtures) for method in chosen}
    residuals = {
        name: mean_std((mixtures - parts.sum(1)).pow(2).flatten(1).mean(1).sqrt())
        for name, parts in estimates.items()
    }
    names = list(trained.component_names)
    rows = (
        [score_method(m.name, estimates[m.name], parts_truth, names, m.part_names) for m in chosen]
        if parts_truth is not None
        else []
    )
    lines = ["| method | residual RMS |", "|---|---|"] + [
        f"| {name} | {mean:.4f} ± {std:.4f} |" for name, (mean, std) in residuals.items()
    ]
    table = "\n".join(lines) + (
        f"\n\nresidual: the RMS of y - (sum of the parts) per mixture, mean ± std over "
        f"{mixtures.shape[0]} ({where})."
    )
    if rows:
        table += "\n\n" + markdown_table(rows, names, mixtures.shape[0])
    evaluation = ObservedEvaluation(
        checkpoint=str(trained.checkpoint),
        mixtures=where,
        n=int(mixtures.shape[0]),
        options=asdict(options),
        residuals=residuals,
        rows=rows,
        table=table,
    )
    return evaluation, mixtures, estimates
