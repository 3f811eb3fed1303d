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

from demixgan.data.families import check_level, get_family
from demixgan.data.sources import load_images
from demixgan.errors import DemixganError
from demixgan.models.operators import ClipOperator, IdentityOperator, mix
from demixgan.spec.image import MNIST_IMAGE, ImageSpec

#: Sources of handwritten digits that a recipe's ``digit`` components may use.
DIGIT_SOURCES = ("mnist-embedded", "mnist")
#: Datasets whose images the paper binarizes (threshold 0.5).
BINARY_SOURCES = ("mnist-embedded", "mnist")


@dataclass(frozen=True)
class ImageComponent:
    """Images of a real dataset, optionally restricted to some classes."""

    name: str
    source: str
    classes: tuple[int | str, ...] | None = None

    def describe(self) -> str:
        kept = "all classes" if self.classes is None else ", ".join(map(str, self.classes))
        return f"{self.name}: {self.source} images ({kept})"


@dataclass(frozen=True)
class FamilyComponent:
    """A structured signal family (``sines``, ``ink``, ``waves``, ``lines``) at a level."""

    name: str
    family: str

    def describe(self) -> str:
        return f"{self.name}: {get_family(self.family).description}"


Component = ImageComponent | FamilyComponent


@dataclass(frozen=True)
class Recipe:
    """A named superposition setting of the paper."""

    name: str
    description: str
    components: tuple[Component, ...]

    @property
    def has_family(self) -> bool:
        return any(isinstance(c, FamilyComponent) for c in self.components)

    @property
    def signals(self) -> tuple[str, ...]:
        """Names of the components drawn from real images (the digit of digit + sines).

        >>> get_recipe("digit+waves").signals
        ('digit',)
        """
        return tuple(c.name for c in self.components if isinstance(c, ImageComponent))

    @property
    def exchangeable(self) -> bool:
        """Every part drawn from the same images (two digits of any class): none has a role.

        >>> get_recipe("digit+digit").exchangeable, get_recipe("digit1+digit2").exchangeable
        (True, False)
        """
        kinds = {(getattr(c, "source", None), getattr(c, "classes", None)) for c in self.components}
        return not self.has_family and len(kinds) == 1


def _digit(name: str = "digit", classes: tuple[int, ...] | None = None) -> ImageComponent:
    return ImageComponent(name, "mnist-embedded", classes)


def _fashion(name: str, classes: tuple[str, ...] | None = None) -> ImageComponent:
    return ImageComponent(name, "fashion-mnist", classes)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "digit+sines",
            "an MNIST digit crossed by thin sinusoidal curves",
            (_digit(), FamilyComponent("sines", "sines")),
        ),
        Recipe(
            "digit+ink",
            "an MNIST digit crossed by an ink-like curve of varying width and intensity",
            (_digit(), FamilyComponent("ink", "ink")),
        ),
        Recipe(
            "digit+waves",
            "an MNIST digit plus dense 2-D sinusoidal plane waves",
            (_digit(), FamilyComponent("waves", "waves")),
        ),
        Recipe(
            "digit+lines",
            "an MNIST digit crossed by full-length vertical/horizontal lines",
            (_digit(), FamilyComponent("lines", "lines")),
        ),
        Recipe(
            "digit+sines+lines",
            "an MNIST digit crossed by thin sinusoidal curves and by full-length lines (K = 3)",
            (_digit(), FamilyComponent("sines", "sines"), FamilyComponent("lines", "lines")),
        ),
        Recipe(
            "digit+digit",
            "two independent MNIST digits, each from all ten classes",
            (_digit("digit-a"), _digit("digit-b")),
        ),
        Recipe(
            "digit1+digit2",
            "an MNIST 1 plus an MNIST 2",
            (_digit("digit-1", (1,)), _digit("digit-2", (2,))),
        ),
        Recipe(
            "fashion+fashion",
            "two independent Fashion-MNIST objects, each from all ten classes",
            (_fashion("object-a"), _fashion("object-b")),
        ),
        Recipe(
            "dress+bag",
            "a Fashion-MNIST dress plus a Fashion-MNIST bag",
            (_fashion("dress", ("dress",)), _fashion("bag", ("bag",))),
        ),
        Recipe(
            "digit8+dress",
            "an MNIST 8 plus a Fashion-MNIST dress",
            (_digit("digit-8", (8,)), _fashion("dress", ("dress",))),
        ),
    )
}


def get_recipe(name: str) -> Recipe:
    """Look up a recipe by name; an unknown name lists the valid ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise DemixganError(
            f"Unknown recipe '{name}'. Valid recipes: {', '.join(RECIPES)}. "
            "Run 'demixgan data info' to see what each one mixes."
        ) from None


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
    def num_components(self) -> int:
        return len(self._draws)

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
