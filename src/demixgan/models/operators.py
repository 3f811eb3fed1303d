"""Measurement operators A applied to the sum of the components.

>>> A = GaussianOperator(100, 28 * 28, seed=0)
>>> A(torch.ones(3, 1, 28, 28)).shape
torch.Size([3, 100])
>>> torch.equal(A.matrix, GaussianOperator(100, 784, seed=0).matrix)  # the seed is the matrix
True
"""

from __future__ import annotations

import torch
from torch import nn


class IdentityOperator(nn.Module):
    """A(x) = x: the observation is the superposition itself."""

    name = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class GaussianOperator(nn.Module):
    """A(x) = A vec(x) with A an m x p matrix of i.i.d. N(0, 1/m) entries (compressive sensing).

    The matrix is drawn from ``seed`` alone, so measurements and their recovery can be made on
    different machines and at different times: the seed and m name the matrix.
    """

    name = "gaussian"

    def __init__(self, measurements: int, pixels: int, *, seed: int = 0) -> None:
        super().__init__()
        if measurements < 1 or pixels < 1:
            raise ValueError(f"need m >= 1 and p >= 1, got m={measurements}, p={pixels}")
        generator = torch.Generator().manual_seed(seed)
        matrix = torch.randn(measurements, pixels, generator=generator) / measurements**0.5
        self.register_buffer("matrix", matrix, persistent=False)
        self.seed = seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.matrix.T
