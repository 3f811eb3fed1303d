"""Turn a run configuration into the objects it names: model, discriminator, training data.

Training and inference both build from here, so a checkpoint rebuilds exactly the model its run
trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from demixgan.data.observed import ImageStack, load_mixtures, value_range
from demixgan.data.superposition import (
    MixtureBatch,
    MixtureSampler,
    build_sampler,
    make_mixtures,
)
from demixgan.errors import DemixganError
from demixgan.models.operators import ClipOperator, IdentityOperator
from demixgan.models.superposition_model import (
    KnownComponent,
    LearnedComponent,
    SuperpositionModel,
)
from demixgan.networks.registry import build_discriminator, build_generator
from demixgan.spec.config import ComponentConfig, RunConfig
from demixgan.spec.image import ImageSpec

#: Seed offset of the fixed training mixtures, apart from the seeds of model init and steps.
DATA_SEED_OFFSET = 1_000_003
#: Seed offset of the validation part held out of a user's own mixtures.
VALIDATION_SEED_OFFSET = 2_000_003


def build_model(config: RunConfig, image: ImageSpec) -> SuperpositionModel:
    """The superposition model of a config for images of ``image``; parameters initialised
    from the global RNG.

    A component that ``shares`` another's generator gets that very module: one network drawn
    with two independent latents, for parts that come from the same distribution. Clipped
    training mixtures are observed through the clip operator, so fakes saturate as they do.
    """
    networks: dict[str, nn.Module] = {}
    components: list[LearnedComponent | KnownComponent] = []
    for c in config.components:
        if c.kind == "known":
            components.append(KnownComponent(c.name, c.family, c.level, _color(c, image)))
            continue
        if c.shares is None:
            networks[c.name] = build_generator(
                c.arch,
                c.latent_dim,
                image=image,
                hidden=c.hidden,
                channels=c.channels,
                norm=c.norm,
            )
        components.append(LearnedComponent(c.name, networks[c.shares or c.name]))
    return SuperpositionModel(
        components,
        image=image,
        operator=ClipOperator() if config.data.clip else IdentityOperator(),
        coupling=config.model.coupling,
        coupling_scale=config.model.coupling_scale,
    )


def _color(component: ComponentConfig, image: ImageSpec) -> tuple[float, ...] | str | None:
    """A known component's colour as the model takes it: (r, g, b) in [0, 1] or "learned"."""
    if component.color is None:
        return None
    if image.channels != 3:
        raise DemixganError(
            f"components '{component.name}' has color = {component.color!r}, but the mixtures "
            f"are {image.describe()} images: a colour needs RGB mixtures. Remove the key."
        )
    if component.color == "learned":
        return "learned"
    return tuple(int(component.color[i : i + 2], 16) / 255 for i in (1, 3, 5))


def info_code_dims(config: RunConfig) -> dict[str, int]:
    """Leading latent dimensions per learned component that the info term asks D to recover."""
    if config.train.info_weight == 0:
        return {}
    return {
        c.name: min(config.train.info_dims, c.latent_dim)
        for c in config.components
        if c.kind == "learned"
    }


def build_run_discriminator(config: RunConfig, image: ImageSpec) -> nn.Module:
    d = config.discriminator
    return build_discriminator(
        d.arch,
        image=image,
        channels=d.channels,
        spectral_norm=d.spectral_norm,
        code_dim=sum(info_code_dims(config).values()),
    )


@dataclass(frozen=True)
class TrainingData:
    """The fixed set of observed training signals (mixtures, or one clean component).

    ``observations[index]`` is float32 [B, C, H, W] in [0, 1] for either kind; a user's own
    mixtures are kept as stored (``ImageStack``) with their ``validation`` part apart.
    """

    observations: torch.Tensor | ImageStack  # [N, C, H, W]
    description: str
    image: ImageSpec
    validation: ImageStack | None = None


def run_sampler(config: RunConfig, split: str | None = None) -> MixtureSampler:
    """Mixtures of a run's recipe drawn and observed as its training ones (level, clip,
    binarized digits, source), from ``split`` (default the run's own)."""
    data = config.data
    return build_sampler(
        data.recipe,
        level=data.level,
        split=split or data.split,
        digit_source=data.digit_source,
        binarize=data.binarize,
        clip=data.clip,
        data_dir=data.data_dir,
    )


def training_sampler(config: RunConfig) -> tuple[MixtureSampler, int]:
    """The sampler of a run's data and how many training observations it yields."""
    sampler = run_sampler(config)
    limit = config.data.limit
    return sampler, sampler.size if limit == 0 else min(limit, sampler.size)


def load_training_data(config: RunConfig) -> TrainingData:
    """Build the training observations once, from a seed: a fixed set, as a user would have.

    Each image of the split is used once (paired with one independent draw of the other
    components), so the learner never sees the same digit under two different corruptions.
    A user's own ``data.mixtures`` are taken as they are.
    """
    data = _observed_mixtures(config) if config.data.mixtures else _recipe_data(config)
    count = data.observations.shape[0]
    if count < config.train.batch_size:
        held = "" if data.validation is None else f" after {len(data.validation)} held out"
        raise DemixganError(
            f"The training data ({data.description}) has {count} observations{held}, fewer "
            f"than one batch of {config.train.batch_size}. Lower train.batch_size "
            "(--set train.batch_size=N) or add observations."
        )
    return data


def load_training_parts(config: RunConfig) -> torch.Tensor:
    """The clean parts [N, K, C, H, W] of a recipe run's training mixtures, in their order:
    what only the supervised upper bound may learn from (a user's mixtures have none)."""
    if config.data.mixtures is not None or config.data.recipe is None:
        raise DemixganError(
            "The run learned from observed mixtures, whose clean parts are unknown: the "
            "supervised bound needs a recipe's mixtures, drawn with their parts."
        )
    return _recipe_batch(config)[2].components.contiguous()


def _recipe_batch(config: RunConfig) -> tuple[MixtureSampler, int, MixtureBatch]:
    """A recipe run's sampler, its training count and the seeded training batch."""
    sampler, count = training_sampler(config)
    return sampler, count, make_mixtures(sampler, count, seed=config.seed + DATA_SEED_OFFSET)


def _recipe_data(config: RunConfig) -> TrainingData:
    """A recipe's mixtures (or one clean component of them) drawn from its split."""
    data = config.data
    sampler, count, batch = _recipe_batch(config)
    if data.observe is None:
        observations, what = batch.mixtures, f"{data.recipe} mixtures"
    else:
        index = sampler.names.index(data.observe)
        observations, what = batch.components[:, index], f"clean '{data.observe}' of {data.recipe}"
    level = f" level {sampler.level}" if sampler.level is not None else ""
    return TrainingData(
        observations.contiguous(),
        f"{count} {what}{level} ({data.split} split, {data.digit_source})",
        sampler.image,
    )


def _observed_mixtures(config: RunConfig) -> TrainingData:
    """A user's own mixtures (``data.limit``: the first ones), a seeded share held out."""
    data = config.data
    stack = load_mixtures(data.mixtures, resize=data.resize, crop=data.crop)
    low, high = value_range(stack)
    parts = len(config.components)
    if low < 0 or high > parts:
        raise DemixganError(
            f"The observed mixtures in '{data.mixtures}' range from {low:.4g} to {high:.4g}, "
            f"outside what {parts} parts in [0, 1] can sum to ([0, {parts}]); store images as "
            "uint8 (0..255), uint16 or floats in [0, 1] per part."
        )
    if data.limit:
        stack = stack.subset(torch.arange(min(data.limit, len(stack))))
    train, validation = hold_out(stack, data.validation_share, config.seed)
    what = f"{len(train)} observed {stack.image.describe()} mixtures"
    if len(validation):
        what += f" ({len(validation)} more held out for validation)"
    return TrainingData(train, what, stack.image, validation)


def hold_out(stack: ImageStack, share: float, seed: int) -> tuple[ImageStack, ImageStack]:
    """(training, validation) parts of ``stack``: a seeded ``share`` (at least one image
    where the share is positive) is validation; both keep the files' order."""
    count = len(stack)
    held = 0 if share == 0 or count < 2 else max(1, round(share * count))
    generator = torch.Generator().manual_seed(seed + VALIDATION_SEED_OFFSET)
    order = torch.randperm(count, generator=generator)
    return stack.subset(order[held:].sort().values), stack.subset(order[:held].sort().values)
