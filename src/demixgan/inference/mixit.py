"""Mixture invariant training (MixIT, Wisdom et al. 2020): the unsupervised peer's loss and
what turns its outputs into parts.

MixIT needs neither clean parts nor a generative model: two training mixtures are added into
a mixture of mixtures, a network with M >= 2K outputs separates it, and the loss takes the
best way to add its outputs back into the two mixtures (each output to one of them). Trained
so, each output holds one source, but which output holds which kind of part is not fixed.
At test time the network sees one mixture and its M outputs must become K parts:

- ``SlotGrouping`` does it without the truth: each output slot settles on a kind of source,
  so the slots are grouped once, on training mixtures, by their energy and what their outputs
  look like;
- ``oracle_groups`` takes each mixture's best grouping against the truth, the reading the
  MixIT papers report as "oracle"; a table labels it so.

The loss here is written from the paper (asteroid's ``MixITLossWrapper`` is the reference;
asteroid does not import beside this torch).

>>> slot_assignments(3, 2).tolist()[:3]
[[0, 0, 0], [0, 0, 1], [0, 1, 0]]
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def slot_assignments(slots: int, groups: int, *, every_group: bool = False) -> torch.Tensor:
    """Every assignment of ``slots`` outputs to ``groups`` groups [Z, slots] (group index per
    output); ``every_group``: only those that give each group at least one output."""
    rows = [
        row
        for row in itertools.product(range(groups), repeat=slots)
        if not every_group or len(set(row)) == groups
    ]
    return torch.tensor(rows, dtype=torch.long)


def grouped(outputs: torch.Tensor, assignment: torch.Tensor, groups: int) -> torch.Tensor:
    """Outputs [N, M, ...] added by group: ``assignment`` [N, M] -> [N, groups, ...]."""
    onehot = nn.functional.one_hot(assignment, groups).to(outputs.dtype)  # [N, M, G]
    return torch.einsum("nmg,nm...->ng...", onehot, outputs)


def mixit_loss(outputs: torch.Tensor, mixtures: torch.Tensor) -> torch.Tensor:
    """Per-example MixIT loss [B]: the mean squared error of the best way to add the outputs
    [B, M, C, H, W] back into the two mixtures [B, 2, C, H, W] whose sum they separate."""
    assignments = slot_assignments(outputs.shape[1], mixtures.shape[1]).to(outputs.device)
    errors = torch.stack(
        [
            (grouped(outputs, row.expand(len(outputs), -1), mixtures.shape[1]) - mixtures)
            .pow(2)
            .flatten(1)
            .mean(1)
            for row in assignments
        ],
        dim=1,
    )
    return errors.min(1).values


def oracle_groups(outputs: torch.Tensor, truths: torch.Tensor) -> torch.Tensor:
    """Each mixture's outputs [N, M, ...] added into its K true parts [N, K, ...] by the
    grouping with the least squared error: an upper bound of any rule, which sees the truth."""
    groups = truths.shape[1]
    best, best_error = None, None
    for row in slot_assignments(outputs.shape[1], groups):
        parts = grouped(outputs, row.expand(len(outputs), -1), groups)
        error = (parts - truths).pow(2).flatten(1).mean(1)
        if best is None:
            best, best_error = parts, error
        else:
            better = error < best_error
            best = torch.where(better.view(-1, *[1] * (parts.ndim - 1)), parts, best)
            best_error = torch.minimum(error, best_error)
    return best


class SlotGrouping(nn.Module):
    """Which of K parts each of a MixIT network's M outputs adds into (``partition`` [M]),
    fitted on training mixtures, never on a truth.

    Trained so, each output slot settles on a kind of source (on the demo's digit + ink
    mixtures most validation mixtures share one best grouping). The K slots that carry the
    most energy over the training mixtures found the K parts; every other slot joins the one
    whose outputs look most like its own, described by the magnitude of their 2-D Fourier
    transforms (what a stroke looks like wherever it lies: two bars or digits at other places
    share no pixel).
    """

    def __init__(self, groups: int, slots: int) -> None:
        super().__init__()
        self.groups = groups
        self.register_buffer("partition", torch.arange(slots) % groups)

    @classmethod
    def fit(cls, outputs: torch.Tensor, groups: int) -> SlotGrouping:
        """The grouping of a network's outputs [N, M, C, H, W] on training mixtures."""
        slots = outputs.shape[1]
        energy = outputs.double().pow(2).flatten(2).mean(2)  # [N, M]
        looks = (_features(outputs).double() * energy[..., None]).sum(0)  # [M, P]
        looks = looks / looks.norm(dim=1, keepdim=True).clamp(min=1e-12)
        founders = energy.sum(0).argsort(descending=True)[:groups].tolist()
        similarity = looks @ looks[founders].T  # [M, K]
        grouping = cls(groups, slots)
        grouping.partition.copy_(similarity.argmax(1))
        grouping.partition[founders] = torch.arange(groups)
        return grouping

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs [N, M, ...] -> parts [N, K, ...]: each output added into its slot's part."""
        assignment = self.partition.to(outputs.device).expand(len(outputs), -1)
        return grouped(outputs, assignment, self.groups)


def _features(outputs: torch.Tensor) -> torch.Tensor:
    """What each output [N, M, C, H, W] looks like wherever it lies: the magnitude of its 2-D
    Fourier transform per channel, flattened to unit norm [N, M, C*H*W]."""
    magnitude = torch.fft.fft2(outputs.float()).abs().flatten(2)
    return magnitude / magnitude.norm(dim=2, keepdim=True).clamp(min=1e-12)
