"""Discriminators D(y) -> one logit per image."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _init_truncated_normal(module: nn.Module, std: float = 0.02) -> None:
    """The paper's DCGAN discriminator initialisation: truncated normal weights, zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            nn.init.trunc_normal_(layer.weight, 0.0, std, -2 * std, 2 * std)
            nn.init.zeros_(layer.bias)


class ConvDiscriminator(nn.Module):
    """conv(5x5, stride 2) -> leaky ReLU -> conv(5x5, stride 2) -> leaky ReLU -> linear.

    No pooling and no batch norm, as in the paper. ``spectral_norm=True`` constrains every
    layer's Lipschitz constant, a stabilised alternative offered behind a config switch.
    ``code_dim > 0`` adds an InfoGAN-style head that predicts latent codes from the same
    features; ``forward`` always returns ``(logits, codes)``, codes ``None`` without the head.
    """

    def __init__(
        self,
        *,
        channels: int = 64,
        image_size: int = 28,
        use_spectral_norm: bool = False,
        code_dim: int = 0,
    ) -> None:
        super().__init__()
        wrap = spectral_norm if use_spectral_norm else (lambda layer: layer)
        side = (image_size + 3) // 4
        self.features = nn.Sequential(
            wrap(nn.Conv2d(1, channels, 5, 2, 2)),
            nn.LeakyReLU(0.2),
            wrap(nn.Conv2d(channels, 2 * channels, 5, 2, 2)),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.logit = wrap(nn.Linear(2 * channels * side * side, 1))
        self.codes = nn.Linear(2 * channels * side * side, code_dim) if code_dim else None
        _init_truncated_normal(self)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.features(y)
        codes = self.codes(features) if self.codes is not None else None
        return self.logit(features).squeeze(1), codes
