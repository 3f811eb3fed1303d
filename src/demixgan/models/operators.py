"""The measurement operator A and the one mixing rule y = A(sum_k c_k).

Every observation in demixgan is made by ``mix``: the sampler of training and test mixtures,
the model's fake observations, the latent solver's objective, the separators' training pairs
and the experiments all call it, so the rule lives here alone. An operator is one object per
model (as deepinv's ``Physics``): it measures, says whether it is linear, has an adjoint where
it is, and serialises to a small table that rebuilds it.

>>> from demixgan.spec.image import MNIST_IMAGE
>>> A = GaussianOperator(100, MNIST_IMAGE, seed=0)
>>> parts = torch.ones(3, 2, 1, 28, 28)
>>> mix(parts, A).shape, A.adjoint(mix(parts, A)).shape
(torch.Size([3, 100]), torch.Size([3, 1, 28, 28]))
>>> torch.equal(A.matrix, operator_from_dict(A.to_dict(), MNIST_IMAGE).matrix)  # seed = matrix
True
>>> mix(parts, ClipOperator()).max().item()
1.0
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from demixgan.errors import DemixganError
from demixgan.spec.image import ImageSpec


class Operator(nn.Module):
    """A(x) for images x [B, C, H, W] (the sum of the parts)."""

    name = "operator"
    linear = True

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """A^T y: observations back to images (linear operators only)."""
        raise DemixganError(f"The {self.name} operator is not linear: it has no adjoint.")

    def to_dict(self) -> dict[str, Any]:
        """What rebuilds this operator (``operator_from_dict``), for sidecars and reports."""
        return {"name": self.name}


class IdentityOperator(Operator):
    """A(x) = x: the observation is the superposition itself."""

    name = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y


class ClipOperator(Operator):
    """A(x) = clamp(x, 0, 1): a superposition saved as an image saturates at white.

    Not linear: the parts of a clipped mixture need not sum to it, so no consistency
    projection applies and the latent fit meets the saturation where it happens.
    """

    name = "clip"
    linear = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0)


class GaussianOperator(Operator):
    """A(x) = A vec(x) with A an m x p matrix of i.i.d. N(0, 1/m) entries (compressive sensing).

    The matrix is drawn from ``seed`` alone, so measurements and their recovery can be made on
    different machines and at different times: the seed, m and the image spec name the matrix.
    """

    name = "gaussian"

    def __init__(self, measurements: int, image: ImageSpec, *, seed: int = 0) -> None:
        super().__init__()
        if measurements < 1:
            raise DemixganError(f"A Gaussian operator needs m >= 1 rows, got m = {measurements}.")
        generator = torch.Generator().manual_seed(seed)
        matrix = torch.randn(measurements, image.pixels, generator=generator) / measurements**0.5
        self.register_buffer("matrix", matrix, persistent=False)
        self.image = image
        self.seed = seed

    @property
    def measurements(self) -> int:
        return self.matrix.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.matrix.T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y @ self.matrix).view(-1, *self.image.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "measurements": self.measurements, "seed": self.seed}


def mix(parts: torch.Tensor, operator: nn.Module | None = None) -> torch.Tensor:
    """The observation of parts [B, K, C, H, W]: A(sum_k parts_k) (A = identity by default)."""
    total = parts.sum(dim=1)
    return total if operator is None else operator(total)


def operator_from_dict(data: Any, image: ImageSpec) -> Operator:
    """The operator a ``to_dict`` table describes, for images of ``image``."""
    name = data.get("name") if isinstance(data, dict) else None
    if name == "identity":
        return IdentityOperator()
    if name == "clip":
        return ClipOperator()
    if name == "gaussian" and isinstance(data.get("measurements"), int):
        return GaussianOperator(data["measurements"], image, seed=int(data.get("seed", 0)))
    raise DemixganError(
        f"Unknown measurement operator {data!r}: the operators are identity, clip and gaussian "
        "(with measurements and seed). The file was edited or written by a newer version."
    )
