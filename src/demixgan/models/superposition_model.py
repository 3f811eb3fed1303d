"""The superposition model: y = A(sum_k c_k), c_k = G_k(z_k) (learned) or a known sampler's draw.

>>> from demixgan.networks.registry import build_generator
>>> model = SuperpositionModel(
...     [LearnedComponent("digit", build_generator("dcgan", 8, hidden=16, channels=4)),
...      KnownComponent("sines", "sines", level=1)])
>>> g = torch.Generator().manual_seed(0)
>>> latents, known = model.sample_latents(3, g), model.sample_known(3, g)
>>> model(latents, known).shape
torch.Size([3, 1, 28, 28])
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from demixgan.data.superposition import draw_family
from demixgan.models.family_generators import family_generator
from demixgan.models.operators import IdentityOperator, Operator, mix
from demixgan.spec.image import MNIST_IMAGE, ImageSpec

COUPLINGS = ("independent", "identical", "scaled")


@dataclass
class LearnedComponent:
    """A generator G(z) with z ~ U[-1, 1]^latent_dim (the paper's prior)."""

    name: str
    generator: nn.Module

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim


@dataclass(frozen=True)
class KnownComponent:
    """A structured signal family the user knows how to sample (the denoising-GAN's corruption).

    ``color``: None draws it grey (the same values in every channel), an (r, g, b) in [0, 1]
    in that colour, ``"learned"`` in a colour the GAN learns with the generators.
    """

    name: str
    family: str
    level: int
    color: tuple[float, ...] | str | None = None


class ComponentColor(nn.Module):
    """The colour of a known component in an RGB image: fixed, or learned (a sigmoid of three
    logits, started near white so the family begins as drawn)."""

    def __init__(self, color: tuple[float, ...] | str) -> None:
        super().__init__()
        if color == "learned":
            self.logits = nn.Parameter(torch.full((3,), 2.0))
        else:
            self.register_buffer("fixed", torch.tensor(color, dtype=torch.float32))

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        color = torch.sigmoid(self.logits) if hasattr(self, "logits") else self.fixed
        return grey * color.to(grey.device).view(1, -1, 1, 1)


class ColoredGenerator(nn.Module):
    """A known family's generator form (models/family_generators.py) in its component's colour."""

    def __init__(self, generator: nn.Module, color: ComponentColor) -> None:
        super().__init__()
        self.generator, self.color = generator, color
        self.latent_dim = generator.latent_dim
        self.image = getattr(generator, "image", None)
        self.strokes = False  # the stroke search draws grey curves: a coloured one starts at z

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.color(self.generator(z))


def uniform_latents(n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Draws from the latent prior U[-1, 1]^dim."""
    return torch.rand(n, dim, generator=generator) * 2 - 1


class SuperpositionModel(nn.Module):
    """Sum of K components passed through a measurement operator.

    ``coupling`` ties the latents of the learned components for the paper's failure study:
    ``independent`` (default), ``identical`` (z_k = z_1) or ``scaled`` (z_k = scale * z_1).
    A component with a smaller latent takes the leading coordinates of z_1, so the study also
    runs on recipes whose generators differ in latent size (a 100-d digit, an 8-d curve).
    """

    def __init__(
        self,
        components: Sequence[LearnedComponent | KnownComponent],
        *,
        image: ImageSpec = MNIST_IMAGE,
        operator: Operator | None = None,
        coupling: str = "independent",
        coupling_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.image = image
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
        self.names = tuple(c.name for c in components)
        self.learned = tuple(c.name for c in components if isinstance(c, LearnedComponent))
        self.known = tuple(c for c in components if isinstance(c, KnownComponent))
        self.generators = nn.ModuleDict(
            {c.name: c.generator for c in components if isinstance(c, LearnedComponent)}
        )
        self.colors = nn.ModuleDict(
            {c.name: ComponentColor(c.color) for c in self.known if c.color is not None}
        )
        self.operator = operator or IdentityOperator()
        self.coupling = coupling
        self.coupling_scale = coupling_scale

    def latent_dims(self) -> dict[str, int]:
        return {name: self.generators[name].latent_dim for name in self.learned}

    def sample_latents(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Latents of every learned component (CPU), coupled as configured."""
        dims = self.latent_dims()
        if self.coupling == "independent" or len(self.learned) < 2:
            return {name: uniform_latents(n, dims[name], generator) for name in self.learned}
        first = uniform_latents(n, dims[self.learned[0]], generator)
        scale = 1.0 if self.coupling == "identical" else self.coupling_scale
        return {
            name: first if k == 0 else scale * first[:, : dims[name]]
            for k, name in enumerate(self.learned)
        }

    def with_known_fitted(self, level: int | None = None) -> SuperpositionModel:
        """This model with every known component turned into its family's generator form.

        The latent solver then fits the corruption too, instead of leaving it in the residual.
        ``level`` is the number of items to fit (curves, waves); None keeps each component's.
        """
        known = {c.name: c for c in self.known}
        components = [
            LearnedComponent(name, self.generators[name])
            if name in self.generators
            else LearnedComponent(name, self._family_generator(known[name], level))
            for name in self.names
        ]
        return SuperpositionModel(
            components,
            image=self.image,
            operator=self.operator,
            coupling=self.coupling,
            coupling_scale=self.coupling_scale,
        )

    def _family_generator(self, known: KnownComponent, level: int | None) -> nn.Module:
        generator = family_generator(
            known.family, known.level if level is None else level, self.image
        )
        color = self.colors[known.name] if known.name in self.colors else None  # noqa: SIM401
        return generator if color is None else ColoredGenerator(generator, color)

    def sample_known(
        self, n: int, generator: torch.Generator, max_level: int = 0
    ) -> dict[str, torch.Tensor]:
        """Fresh draws of every known component (CPU): AmbientGAN-style corruption, at each
        component's level, or (``max_level``) at a level from 1 to it drawn per image."""
        if not max_level:
            return {
                c.name: draw_family(c.family, n, c.level, generator, self.image) for c in self.known
            }
        drawn = {}
        for c in self.known:
            levels = torch.randint(1, max_level + 1, (n,), generator=generator)
            draws = torch.empty(n, *self.image.shape)
            for level in levels.unique().tolist():
                at = levels == level
                count = int(at.sum())
                draws[at] = draw_family(c.family, count, level, generator, self.image)
            drawn[c.name] = draws
        return drawn

    def components(
        self, latents: Mapping[str, torch.Tensor], known: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Every component as [B, K, C, H, W], in the model's component order."""
        known = known or {}
        parts = [
            self.generators[name](latents[name])
            if name in self.generators
            else self.colors[name](known[name])
            if name in self.colors
            else known[name]
            for name in self.names
        ]
        return torch.stack(parts, dim=1)

    def learned_parts(
        self, latents: Mapping[str, torch.Tensor], differentiate: Collection[str] | None = None
    ) -> torch.Tensor:
        """The learned components [B, K_learned, C, H, W] of ``latents``, in learned order.

        Only the generators named in ``differentiate`` (None: all) record gradients: a latent
        fit that moves one block of latents need not backpropagate through the others.
        """
        parts = []
        for name in self.learned:
            with torch.set_grad_enabled(
                torch.is_grad_enabled() and (differentiate is None or name in differentiate)
            ):
                parts.append(self.generators[name](latents[name]))
        return torch.stack(parts, dim=1)

    def forward(
        self,
        latents: Mapping[str, torch.Tensor],
        known: Mapping[str, torch.Tensor] | None = None,
        *,
        with_components: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The observation A(sum_k c_k), and optionally the components [B, K, C, H, W]."""
        parts = self.components(latents, known)
        observation = mix(parts, self.operator)
        return (observation, parts) if with_components else observation
