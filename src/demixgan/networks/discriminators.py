"""Discriminators D(y) -> one logit per image, built for an ``ImageSpec``.

>>> from demixgan.spec.image import ImageSpec
>>> logits, codes = ConvDiscriminator(channels=8)(torch.rand(2, *MNIST_IMAGE.shape))
>>> logits.shape, codes
(torch.Size([2]), None)
>>> ConvDiscriminator(image=ImageSpec(3, 64, 48), channels=8)(torch.rand(2, 3, 64, 48))[0].shape
torch.Size([2])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from demixgan.spec.image import MNIST_IMAGE, ImageSpec

#: The widest stage has this many times ``channels`` maps.
MAX_WIDENING = 8


def _init_truncated_normal(module: nn.Module, std: float = 0.02) -> None:
    """The paper's DCGAN discriminator initialisation: truncated normal weights, zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            nn.init.trunc_normal_(layer.weight, 0.0, std, -2 * std, 2 * std)
            nn.init.zeros_(layer.bias)


class ConvDiscriminator(nn.Module):
    """``image.stages`` x (conv(5x5, stride 2) -> leaky ReLU) -> linear, down to the base grid.

    Channels double per stage from ``channels`` (at most ``MAX_WIDENING`` times it); the linear
    heads read the ``image.base`` grid. At ``MNIST_IMAGE`` that is the paper's two stages
    (28 -> 14 -> 7), so checkpoints written before the spec existed still load. No pooling and
    no batch norm, as in the paper. ``spectral_norm=True`` constrains every
    layer's Lipschitz constant, a stabilised alternative offered behind a config switch.
    ``code_dim > 0`` adds an InfoGAN-style head that predicts latent codes from the same
    features; ``forward`` always returns ``(logits, codes)``, codes ``None`` without the head.
    """

    def __init__(
        self,
        *,
        image: ImageSpec = MNIST_IMAGE,
        channels: int = 64,
        use_spectral_norm: bool = False,
        code_dim: int = 0,
    ) -> None:
        super().__init__()
        self.image = image
        wrap = spectral_norm if use_spectral_norm else (lambda layer: layer)
        layers: list[nn.Module] = []
        inputs = image.channels
        for stage in range(image.stages):
            outputs = channels * min(2**stage, MAX_WIDENING)
            layers += [wrap(nn.Conv2d(inputs, outputs, 5, 2, 2)), nn.LeakyReLU(0.2, inplace=True)]
            inputs = outputs
        self.features = nn.Sequential(*layers, nn.Flatten())
        base_h, base_w = image.base
        flat = inputs * base_h * base_w
        self.logit = wrap(nn.Linear(flat, 1))
        self.codes = nn.Linear(flat, code_dim) if code_dim else None
        _init_truncated_normal(self)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.features(y)
        codes = self.codes(features) if self.codes is not None else None
        return self.logit(features).squeeze(1), codes
