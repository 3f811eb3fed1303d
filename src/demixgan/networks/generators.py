"""Generators G(z) -> [B, 1, 28, 28] images in [0, 1].

The paper's text leaves details open; the minimal consistent reading used here is written in
docs/networks.md. Both generators map a latent z to an image through two fully connected
layers and two stride-2 transposed convolutions (7 -> 14 -> 28).
"""

from __future__ import annotations

import torch
from torch import nn


def _init_normal(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN initialisation: weights N(0, std), zero biases (batch-norm scales N(1, std))."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, std)
            nn.init.zeros_(layer.bias)


def _norm(kind: str, features: int, spatial: bool) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    return nn.BatchNorm2d(features) if spatial else nn.BatchNorm1d(features)


class ConvGenerator(nn.Module):
    """FC -> FC -> deconv(stride 2) -> deconv(stride 2) -> sigmoid.

    ``kernel`` 5 with ``norm="none"`` is the paper's DCGAN generator; ``kernel`` 4 with
    ``norm="batch"`` is the InfoGAN generator used for Fashion-MNIST.
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        hidden: int = 1024,
        base_channels: int = 128,
        kernel: int = 5,
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        padding, output_padding = (2, 1) if kernel == 5 else (1, 0)
        mid = base_channels // 2
        self.body = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            _norm(norm, hidden, spatial=False),
            nn.ReLU(),
            nn.Linear(hidden, base_channels * 7 * 7),
            _norm(norm, base_channels * 7 * 7, spatial=False),
            nn.ReLU(),
            nn.Unflatten(1, (base_channels, 7, 7)),
            nn.ConvTranspose2d(base_channels, mid, kernel, 2, padding, output_padding),
            _norm(norm, mid, spatial=True),
            nn.ReLU(),
            nn.ConvTranspose2d(mid, 1, kernel, 2, padding, output_padding),
            nn.Sigmoid(),
        )
        _init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)
