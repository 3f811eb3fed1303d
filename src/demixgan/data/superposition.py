"""Superposition data: mixtures y = sum_k c_k built from independent draws of each component.

A *recipe* names the components of a mixture: each is either an image component (a class
subset of a real dataset) or a structured signal family at some level. A
:class:`MixtureSampler` draws batches of mixtures together with their true components, so the
same object feeds training (fresh batches on the fly) and evaluation (a fixed, seeded test set).

>>> sampler = build_sampler("digit+lines", level=2, split="test")
>>> batch = sampler.sample(4, torch.Generator().manual_seed(0))
>>> tuple(batch.mixtures.shape), tuple(batch.components.shape)
((4, 1, 28, 28), (4, 2, 1, 28, 28))
>>> bool(torch.equal(batch.mixtures, batch.components.sum(dim=1)))
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import torch

from demixgan.data.descriptions import DIGIT_SOURCES, ImageComponent, Recipe, get_recipe
from demixgan.data.descriptions import RECIPES as RECIPES  # re-exported beside the samplers
from demixgan.data.families import check_level, get_family
from demixgan.data.sources import load_images
from demixgan.errors import DemixganError
from demixgan.models.operators import ClipOperator, IdentityOperator, mix
from demixgan.spec.image import MNIST_IMAGE, ImageSpec

#: Datasets whose images the paper binarizes (threshold 0.5).
BINARY_SOURCES = ("mnist-embedded", "mnist")


@dataclass(frozen=True)
class MixtureBatch:
    """Mixtures with their ground truth: ``mixtures == components.sum(1)`` unless clipped."""

    mixtures: torch.Tensor  # [B, C, H, W]
    components: torch.Tensor  # [B, K, C, H, W]
    labels: torch.Tensor  # [B, K] int64 class index of image components, -1 for families


@dataclass
class _ImageDraw:
    images: torch.Tensor
    labels: torch.Tensor

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        # Without replacement while the set lasts, so a test set uses each image once.
        count = self.images.shape[0]
        if n <= count:
            index = torch.randperm(count, generator=generator)[:n]
        else:
            index = torch.randint(count, (n,), generator=generator)
        return self.images[index], self.labels[index]


@dataclass
class _FamilyDraw:
    family: str
    level: int
    image: ImageSpec

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        signal = draw_family(self.family, n, self.level, generator, self.image)
        return signal, torch.full((n,), -1, dtype=torch.int64)


def draw_family(
    family: str, n: int, level: int, generator: torch.Generator, image: ImageSpec
) -> torch.Tensor:
    """``n`` draws of a signal family at ``image``'s size: grey strokes in a colour image."""
    signal = get_family(family).sample(n, level, generator, image.height, image.width)
    return signal.expand(-1, image.channels, -1, -1).contiguous()


@dataclass
class MixtureSampler:
    """Draws mixtures of a recipe; each component from its own independent draw."""

    recipe: Recipe
    level: int | None
    split: str
    clip: bool
    names: tuple[str, ...]
    image: ImageSpec
    _draws: list[_ImageDraw | _FamilyDraw] = field(repr=False)

    @property
    def size(self) -> int:
        """Mixtures that use each image of the smallest image component once."""
        return min(d.images.shape[0] for d in self._draws if isinstance(d, _ImageDraw))

    def sample(self, n: int, generator: torch.Generator) -> MixtureBatch:
        """Draw ``n`` mixtures; all randomness comes from ``generator`` (same seed, same batch)."""
        if n < 0:
            raise DemixganError(f"Cannot draw a negative number of mixtures ({n}).")
        parts, labels = zip(*(draw.draw(n, generator) for draw in self._draws), strict=True)
        components = torch.stack(parts, dim=1)
        return MixtureBatch(mix(components, self.operator), components, torch.stack(labels, dim=1))

    @property
    def operator(self) -> ClipOperator | IdentityOperator:
        """How a mixture is observed: saturated at white (``clip``) or as the exact sum."""
        return ClipOperator() if self.clip else IdentityOperator()


def make_mixtures(sampler: MixtureSampler, n: int, seed: int) -> MixtureBatch:
    """A fixed, reproducible set of ``n`` mixtures (e.g. a test set) from ``seed``."""
    return sampler.sample(n, torch.Generator().manual_seed(seed))


def build_sampler(
    recipe: str | Recipe,
    *,
    level: int | None = None,
    split: str = "train",
    digit_source: str = "mnist-embedded",
    binarize: bool | None = None,
    clip: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> MixtureSampler:
    """Load the data a recipe needs and return a sampler of its mixtures.

    ``level`` applies to the recipe's signal-family components (default 1). ``digit_source``
    chooses where digits come from (``mnist-embedded`` needs no download). ``binarize``
    defaults to the paper's choice: binary MNIST digits, grayscale Fashion-MNIST. Sums are not
    clipped by default, so the linear model y = x + n holds exactly; ``clip=True`` clamps to [0, 1].
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if digit_source not in DIGIT_SOURCES:
        raise DemixganError(
            f"Unknown digit source '{digit_source}'. Digits can come from: "
            f"{', '.join(DIGIT_SOURCES)}."
        )
    if level is not None and not recipe.has_family:
        raise DemixganError(
            f"Recipe '{recipe.name}' mixes no signal family, so a level does not apply to it. "
            "Drop the level option."
        )
    resolved_level = check_level(1 if level is None else level) if recipe.has_family else None
    recipe = replace(
        recipe,
        components=tuple(
            replace(c, source=digit_source)
            if isinstance(c, ImageComponent) and c.source in DIGIT_SOURCES
            else c
            for c in recipe.components
        ),
    )
    image_sets = {
        index: load_images(
            c.source,
            split,
            classes=c.classes,
            binarize=c.source in BINARY_SOURCES if binarize is None else binarize,
            data_dir=data_dir,
        )
        for index, c in enumerate(recipe.components)
        if isinstance(c, ImageComponent)
    }
    # Signal families are drawn at the size of the images they are mixed with.
    first = next(iter(image_sets.values()), None)
    image = MNIST_IMAGE if first is None else ImageSpec(*first.images.shape[1:])
    draws: list[_ImageDraw | _FamilyDraw] = [
        _ImageDraw(image_sets[index].images, image_sets[index].labels)
        if index in image_sets
        else _FamilyDraw(c.family, resolved_level, image)
        for index, c in enumerate(recipe.components)
    ]
    return MixtureSampler(
        recipe=recipe,
        level=resolved_level,
        split=split,
        clip=clip,
        names=tuple(c.name for c in recipe.components),
        image=image,
        _draws=draws,
    )
