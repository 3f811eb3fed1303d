"""Known signal families as generators: a family's draw as a differentiable image of a latent.

A known component is sampled, not learned. To fit it to an observation beside the learned
generators (denoising with the corruption modelled too), the latent solver needs it in the
form every learned component has: an image G(z) of a latent z in [-1, 1]^d. ``sines`` and
``waves`` are drawn by their own sampler's formula with z mapped onto its uniform parameters;
``lines``, whose positions are discrete, is relaxed to a free intensity per row and per column
combined by max: a set that holds every ``lines`` draw of every level.

>>> generator = family_generator("sines", level=2)
>>> generator.latent_dim, generator(torch.zeros(3, generator.latent_dim)).shape
(8, torch.Size([3, 1, 28, 28]))
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from demixgan.data.families import (
    SINE_PARAMETERS,
    WAVE_PARAMETERS,
    check_level,
    get_family,
    sines_image,
    waves_image,
)

ImageOfParameters = Callable[[torch.Tensor, int, int], torch.Tensor]


def _uniform_parameters(z: torch.Tensor) -> torch.Tensor:
    """The latent prior U[-1, 1] mapped onto the samplers' U[0, 1], held inside it.

    The clamp passes gradients straight through: a latent pushed past the range (by a blurred
    residual early in a coarse-to-fine fit, say) can still come back when the fit needs it.
    """
    p = (z + 1) / 2
    return p + (p.clamp(0.0, 1.0) - p).detach()


class ParametricFamilyGenerator(nn.Module):
    """``level`` items (curves, waves) of a family, each drawn from its own latent coordinates.

    ``strokes`` marks thin items that a fit should start from a search (inference/stroke_search).
    """

    def __init__(
        self,
        image: ImageOfParameters,
        parameters: int,
        level: int,
        size: int = 28,
        strokes: bool = False,
    ) -> None:
        super().__init__()
        self.image = image
        self.strokes = strokes
        self.parameters_per_item = parameters
        self.level = check_level(level)
        self.latent_dim = parameters * self.level
        self.size = size

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        p = _uniform_parameters(z).view(z.shape[0], self.level, self.parameters_per_item)
        return self.image(p, self.size, self.size)


class RelaxedLinesGenerator(nn.Module):
    """Full-length horizontal and vertical strokes: max(row intensity, column intensity).

    The ``lines`` family puts k value-1 lines at discrete rows or columns; with one intensity
    in [0, 1] per row and per column the fit moves continuously between any such images, and
    an intensity settles at 1 where the observation has a line and at 0 elsewhere (a digit
    cannot fill a whole row).
    """

    def __init__(self, size: int = 28) -> None:
        super().__init__()
        self.size = size
        self.latent_dim = 2 * size

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        rows, columns = _uniform_parameters(z).split(self.size, dim=1)
        return torch.maximum(rows[:, :, None], columns[:, None, :]).unsqueeze(1)


def family_generator(family: str, level: int, size: int = 28) -> nn.Module:
    """The generator form of a known family at ``level`` (lines: any level, relaxed)."""
    level, name = check_level(level), get_family(family).name
    if name == "lines":
        return RelaxedLinesGenerator(size)
    if name == "sines":
        return ParametricFamilyGenerator(sines_image, SINE_PARAMETERS, level, size, strokes=True)
    return ParametricFamilyGenerator(waves_image, WAVE_PARAMETERS, level, size)
