"""GAN losses on discriminator logits.

``paper``: the minimax objective of the paper's eq. 2 for D (binary cross-entropy, real = 1,
fake = 0) with the usual non-saturating generator loss -log D(G(z)). ``hinge``: the hinge
loss, a stabilised alternative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("paper", "hinge")


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor):
    if kind == "paper":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    raise ValueError(f"unknown loss {kind!r}; known: {LOSSES}")


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "paper":
        return F.softplus(-fake_logits).mean()
    if kind == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"unknown loss {kind!r}; known: {LOSSES}")


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1: squared gradient norm of D at real data (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
