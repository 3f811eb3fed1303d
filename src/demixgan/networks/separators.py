"""Separator networks: an observation in, K component images in [0, 1] out, in one pass.

They are trained on the superposition model's own samples (``inference.amortized``), never on
clean parts, so they estimate what the latent fit estimates, without the per-mixture fit.

>>> net = UNetSeparator(components=2, width=8)
>>> net(torch.rand(3, 1, 28, 28)).shape
torch.Size([3, 2, 1, 28, 28])
>>> lifted = UNetSeparator(components=1, width=8, measurements=100)
>>> lifted(torch.randn(3, 100)).shape
torch.Size([3, 1, 1, 28, 28])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SIZE = 28


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


class UNetSeparator(nn.Module):
    """A two-level U-Net on 28 x 28 images (28 -> 14 -> 7 and back, with skips).

    ``measurements`` m > 0 puts a learned linear lift R^m -> R^784 in front, for compressive
    observations y = A x; it starts as A^T when ``lift_init`` is given, the usual back-projection.
    """

    def __init__(
        self,
        components: int,
        *,
        width: int = 32,
        measurements: int = 0,
        lift_init: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.components = components
        self.width = width
        self.measurements = measurements
        self.lift = nn.Linear(measurements, IMAGE_SIZE * IMAGE_SIZE) if measurements else None
        if self.lift is not None and lift_init is not None:
            with torch.no_grad():
                self.lift.weight.copy_(lift_init)
                self.lift.bias.zero_()
        self.down1 = _block(1, width)
        self.down2 = _block(width, 2 * width)
        self.bottom = _block(2 * width, 4 * width)
        self.up2 = _block(6 * width, 2 * width)
        self.up1 = _block(3 * width, width)
        self.head = nn.Conv2d(width, components, 1)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """[B, 1, 28, 28] images (or [B, m] measurements) -> [B, K, 1, 28, 28]."""
        if self.lift is not None:
            observations = self.lift(observations).view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
        full = self.down1(observations)
        half = self.down2(F.avg_pool2d(full, 2))
        quarter = self.bottom(F.avg_pool2d(half, 2))
        half = self.up2(torch.cat([half, F.interpolate(quarter, scale_factor=2)], 1))
        full = self.up1(torch.cat([full, F.interpolate(half, scale_factor=2)], 1))
        return torch.sigmoid(self.head(full)).unsqueeze(2)
