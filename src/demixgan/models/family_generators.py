"""Known signal families as generators: a family's draw as a differentiable image of a latent.

A known component is sampled, not learned. To fit it to an observation beside the learned
generators (denoising with the corruption modelled too), the latent solver needs it in the
form every learned component has: an image G(z) of a latent z in [-1, 1]^d. ``sines``, ``ink``
and ``waves`` are drawn by their own sampler's formula with z mapped onto its uniform parameters;
``lines``, whose positions are discrete, is relaxed to a free intensity per row and per column
combined by max: a set that holds every ``lines`` draw of every level. Each is drawn at the
run's ``ImageSpec``; the families are grey, so in an RGB image they are grey strokes in a
colour image (the same values in every channel).

>>> from demixgan.spec.image import ImageSpec
>>> generator = family_generator("sines", level=2)  # MNIST_IMAGE
>>> generator.latent_dim, generator(torch.zeros(3, generator.latent_dim)).shape
(8, torch.Size([3, 1, 28, 28]))
>>> lines = family_generator("lines", level=2, image=ImageSpec(3, 32, 48))
>>> lines.latent_dim, lines(torch.zeros(3, lines.latent_dim)).shape  # 32 rows + 48 columns
(80, torch.Size([3, 3, 32, 48]))
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from demixgan.data.families import (
    INK_PARAMETERS,
    SINE_PARAMETERS,
    WAVE_PARAMETERS,
    check_level,
    get_family,
    ink_image,
    sines_image,
    waves_image,
)
from demixgan.errors import DemixganError
from demixgan.networks.generators import grey_image
from demixgan.spec.image import MNIST_IMAGE, ImageSpec

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

    ``draw(p, height, width)`` renders parameters p [B, level, parameters] in [0, 1] as grey
    images [B, 1, height, width]. ``strokes`` marks thin items that a fit should start from a
    search (inference/stroke_search), which draws its dictionary with ``draw`` at ``image``.
    """

    def __init__(
        self,
        draw: ImageOfParameters,
        parameters: int,
        level: int,
        image: ImageSpec = MNIST_IMAGE,
        strokes: bool = False,
    ) -> None:
        super().__init__()
        self.draw = draw
        self.image = image
        self.strokes = strokes
        self.parameters_per_item = parameters
        self.level = check_level(level)
        self.latent_dim = parameters * self.level

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return grey_image(self.draw(self._item_parameters(z), *self._size), self.image)

    def items_alone(self, z: torch.Tensor) -> torch.Tensor:
        """Each of the ``level`` items of latents z drawn alone: [N, level, C, H, W].

        A strokes family combines its items by max, so the max over any subset of these is
        that subset's image: inference/level.py drops surplus items without fitting again.
        """
        p = self._item_parameters(z)
        alone = self.draw(p.flatten(0, 1).unsqueeze(1), *self._size)
        return grey_image(alone, self.image).unflatten(0, p.shape[:2])

    def _item_parameters(self, z: torch.Tensor) -> torch.Tensor:
        return _uniform_parameters(z).view(z.shape[0], self.level, self.parameters_per_item)

    @property
    def _size(self) -> tuple[int, int]:
        return self.image.height, self.image.width


class RelaxedLinesGenerator(nn.Module):
    """Full-length horizontal and vertical strokes: max(row intensity, column intensity).

    The ``lines`` family puts k value-1 lines at discrete rows or columns; with one intensity
    in [0, 1] per row (``image.height`` of them, first in the latent) and per column
    (``image.width``) the fit moves continuously between any such images, and an intensity
    settles at 1 where the observation has a line and at 0 elsewhere (a digit cannot fill a
    whole row).
    """

    def __init__(self, image: ImageSpec = MNIST_IMAGE) -> None:
        super().__init__()
        self.image = image
        self.latent_dim = image.height + image.width

    def items(self, z: torch.Tensor) -> torch.Tensor:
        """How many lines latents [N, latent_dim] draw: rows and columns at intensity >= 0.5
        (the fit finds the number of lines itself, so it needs no level)."""
        return (_uniform_parameters(z) >= 0.5).sum(1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        sides = [self.image.height, self.image.width]
        rows, columns = _uniform_parameters(z).split(sides, dim=1)
        grey = torch.maximum(rows[:, :, None], columns[:, None, :]).unsqueeze(1)
        return grey_image(grey, self.image)


def family_generator(family: str, level: int, image: ImageSpec = MNIST_IMAGE) -> nn.Module:
    """The generator form of a known family at ``level`` (lines: any level, relaxed)."""
    level, name = check_level(level), get_family(family).name
    if name == "lines":
        return RelaxedLinesGenerator(image)
    if name == "sines":
        return ParametricFamilyGenerator(sines_image, SINE_PARAMETERS, level, image, strokes=True)
    if name == "ink":
        return ParametricFamilyGenerator(ink_image, INK_PARAMETERS, level, image, strokes=True)
    if name == "waves":
        return ParametricFamilyGenerator(waves_image, WAVE_PARAMETERS, level, image)
    raise DemixganError(
        f"The known family {name!r} has no generator form to fit (sines, ink, waves and lines "
        "do), so a denoising-GAN of it cannot fit its corruption: denoise with G alone (leave "
        "out the corruption level)."
    )
