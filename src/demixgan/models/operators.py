"""The measurement operator A and the one mixing rule y = A(sum_k c_k).

Every observation in demixgan is made by ``mix``: the sampler of training and test mixtures,
the model's fake observations, the latent solver's objective, the separators' training pairs
and the experiments all call it, so the rule lives here alone. An operator is one object per
model (as deepinv's ``Physics``): it measures, says whether it observes the plain sum of the
parts, has an adjoint where it is linear, and serialises to a small table that rebuilds it.

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

import reprlib
from typing import Any

import torch
from torch import nn

from demixgan.errors import DemixganError
from demixgan.spec.image import ImageSpec
from demixgan.spec.validation import whole


class Operator(nn.Module):
    """A(x) for images x [B, C, H, W] (the sum of the parts)."""

    name = "operator"
    #: Whether A(x) = x: only then is an observation exactly the sum of the parts, so separated
    #: parts may be projected onto it (clipping and measuring break that).
    observes_sum = False

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """A^T y: observations back to images (linear operators only)."""
        raise DemixganError(f"The {self.name} operator is not linear: it has no adjoint.")

    def to_dict(self) -> dict[str, Any]:
        """What rebuilds this operator (``operator_from_dict``), for sidecars and reports."""
        return {"name": self.name}


class IdentityOperator(Operator):
    """A(x) = x: the observation is the superposition itself."""

    name = "identity"
    observes_sum = True

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


#: Largest Gaussian matrix a sidecar may ask for, in entries (4 GiB of float32): 170 times
#: MNIST's largest (7,840 rows of 784 pixels), while 2e9 rows would ask for 6 TB.
MAX_MATRIX_ENTRIES = 1 << 30
#: Seeds of the Gaussian matrix: what torch.Generator.manual_seed takes, kept non-negative.
MAX_SEED = 2**63 - 1


def operator_from_dict(data: Any, image: ImageSpec) -> Operator:
    """The operator a ``to_dict`` table describes, for images of ``image``.

    The table comes from a sidecar, which may have been edited: anything but the tables
    ``to_dict`` writes (with m from 1 to 10 x the pixels, a matrix of at most
    ``MAX_MATRIX_ENTRIES``, a seed from 0 to 2^63 - 1) is refused before a matrix is drawn.
    """
    name = data.get("name") if isinstance(data, dict) else None
    if name in ("identity", "clip") and set(data) == {"name"}:
        return IdentityOperator() if name == "identity" else ClipOperator()
    if name == "gaussian" and set(data) <= {"name", "measurements", "seed"}:
        m, seed = data.get("measurements"), data.get("seed", 0)
        rows_ok = (
            whole(m) and 1 <= m <= 10 * image.pixels and m * image.pixels <= MAX_MATRIX_ENTRIES
        )
        if rows_ok and whole(seed) and 0 <= seed <= MAX_SEED:
            return GaussianOperator(m, image, seed=seed)
    raise DemixganError(
        f"Unknown or invalid measurement operator {reprlib.repr(data)}: the operators are "
        '{"name": "identity"}, {"name": "clip"} and {"name": "gaussian", "measurements": m, '
        f'"seed": s}} with m from 1 to {10 * image.pixels} (ten times the {image.pixels} values '
        f"of a {image.describe()} image, and at most {MAX_MATRIX_ENTRIES:,} matrix entries) and "
        f"s from 0 to {MAX_SEED}. The file was edited or written by a newer version."
    )
