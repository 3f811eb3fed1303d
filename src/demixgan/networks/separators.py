"""Separator networks: an observation in, K component images in [0, 1] out, in one pass.

They are trained on the superposition model's own samples (``inference.amortized``), never on
clean parts, so they estimate what the latent fit estimates, without the per-mixture fit.

>>> from demixgan.spec.image import ImageSpec
>>> net = UNetSeparator(components=2, width=8)  # MNIST_IMAGE
>>> net(torch.rand(3, *MNIST_IMAGE.shape)).shape
torch.Size([3, 2, 1, 28, 28])
>>> lifted = UNetSeparator(components=1, width=8, measurements=100, image=ImageSpec(3, 32, 48))
>>> lifted(torch.randn(3, 100)).shape
torch.Size([3, 1, 3, 32, 48])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from demixgan.spec.image import MNIST_IMAGE, ImageSpec


def _block(inputs: int, outputs: int) -> nn.Sequential:
    """Two 3x3 convolutions with group norm and SiLU (group norm: batch-size independent)."""
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1),
        nn.GroupNorm(min(8, outputs), outputs),
        nn.SiLU(),
        nn.Conv2d(outputs, outputs, 3, padding=1),
        nn.GroupNorm(min(8, outputs), outputs),
        nn.SiLU(),
    )


def _upsample(coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``coarse`` features, nearest-upsampled to the size of the finer level's ``skip``.

    To the skip's size rather than by a factor 2, so an odd side (pooled down by flooring: 7
    rows to 3) comes back to its own size; where the sides halve exactly, both are the same.
    """
    return F.interpolate(coarse, size=skip.shape[-2:])


class UNetSeparator(nn.Module):
    """A two-level U-Net on ``image``-shaped observations (full -> half -> quarter and back).

    The skips join each level's features with the coarser level's, interpolated to the skip's
    size rather than doubled, so no side has to be a power of 2; at ``MNIST_IMAGE`` the levels
    are 28 -> 14 -> 7.
    The head gives ``image.channels`` maps per component. ``measurements`` m > 0 puts a learned
    linear lift R^m -> R^(image.pixels) in front, for compressive observations y = A x; it
    starts as A^T when ``lift_init`` is given, the usual back-projection.
    """

    def __init__(
        self,
        components: int,
        *,
        image: ImageSpec = MNIST_IMAGE,
        width: int = 32,
        measurements: int = 0,
        lift_init: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.components = components
        self.image = image
        self.width = width
        self.measurements = measurements
        self.lift = nn.Linear(measurements, image.pixels) if measurements else None
        if self.lift is not None and lift_init is not None:
            with torch.no_grad():
                self.lift.weight.copy_(lift_init)
                self.lift.bias.zero_()
        self.down1 = _block(image.channels, width)
        self.down2 = _block(width, 2 * width)
        self.bottom = _block(2 * width, 4 * width)
        self.up2 = _block(6 * width, 2 * width)
        self.up1 = _block(3 * width, width)
        self.head = nn.Conv2d(width, components * image.channels, 1)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] images (or [B, m] measurements) -> [B, K, C, H, W] components."""
        if self.lift is not None:
            observations = self.lift(observations).view(-1, *self.image.shape)
        full = self.down1(observations)
        half = self.down2(F.avg_pool2d(full, 2))
        quarter = self.bottom(F.avg_pool2d(half, 2))
        half = self.up2(torch.cat([half, _upsample(quarter, half)], 1))
        full = self.up1(torch.cat([full, _upsample(half, full)], 1))
        # The head in float32 under a bfloat16 autocast too: bfloat16 steps by 1/256 near 1.
        with torch.autocast(full.device.type, enabled=False):
            parts = torch.sigmoid(self.head(full.float()))  # [B, K * C, H, W], component-major
        return parts.view(parts.shape[0], self.components, self.image.channels, *full.shape[-2:])
