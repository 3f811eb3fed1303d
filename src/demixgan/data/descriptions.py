"""What the data registries hold, without torch: signal families, levels and mixture recipes.

``demixgan data info`` lists these names and descriptions; the samplers that draw them
(``families.py``, ``superposition.py``) import torch and build their registries from the tables
here, so listing what exists never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from demixgan.errors import DemixganError

#: A family's level is the number of random components superposed in one image.
MIN_LEVEL = 1
MAX_LEVEL = 10

#: Signal family name -> what one image of level k holds (``families.FAMILIES`` samples them).
FAMILY_DESCRIPTIONS: dict[str, str] = {
    "sines": "k thin anti-aliased random sinusoidal curves spanning the image width (union).",
    "waves": (
        "sum of k random 2-D sinusoidal plane waves, min-max scaled to [0, 1] (dense texture)."
    ),
    "ink": "k ink-like sinusoidal strokes of varying width and intensity, most reaching 1 (union).",
    "lines": (
        "k random full-length 1-px vertical or horizontal lines at distinct positions (union)."
    ),
    "ink-lines": (
        "k ink-like full-length vertical or horizontal lines of varying width and intensity, "
        "anti-aliased, most reaching 1 (union)."
    ),
    "brush": (
        "k brush strokes of a second renderer: Gaussian-profile sinusoidal curves of other "
        "widths, amplitudes and gains than ink (out-of-distribution test strokes, union)."
    ),
}

#: Sources of handwritten digits that a recipe's ``digit`` components may use.
DIGIT_SOURCES = ("mnist-embedded", "mnist")


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
        return f"{self.name}: {FAMILY_DESCRIPTIONS[self.family]}"


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
            "digit+ink-lines",
            "an MNIST digit crossed by ink-like ruled lines of varying width and intensity",
            (_digit(), FamilyComponent("ink-lines", "ink-lines")),
        ),
        Recipe(
            "digit+ink-ood",
            "an MNIST digit crossed by brush strokes, another renderer than ink's: test "
            "mixtures out of a digit + ink model's distribution",
            (_digit(), FamilyComponent("ink", "brush")),
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
