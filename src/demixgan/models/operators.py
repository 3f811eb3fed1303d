"""Measurement operators A applied to the sum of the components."""

from __future__ import annotations

import torch
from torch import nn


class IdentityOperator(nn.Module):
    """A(x) = x: the observation is the superposition itself."""

    name = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
