"""How many curves or lines corrupt an image, when nobody says: model selection on the fit.

A denoising-GAN knows the corruption's family, not how many of its items lie on a given image.
The fit of G beside k items is run for every k of a range; one more item that lies on real
corruption lowers the residual by about its stroke's energy (a 28-pixel line: about 0.03 per
pixel), one that can only explain digit strokes or nothing by far less. Each image takes the
smallest k after which one more item lowers its residual by less than ``threshold`` (mean
squared error per pixel). A strokes family (``sines``, ``ink``) combines its items by max, so
one fit at the largest k holds every smaller fit's candidates: ``PrunedItems`` drops each
image's surplus items from it instead, one fit instead of one per level. The threshold is
chosen on validation images with their true level (``choose_threshold``), never on the test
images, and never told the level at test time.

>>> errors = torch.tensor([[0.05, 0.02, 0.019, 0.0185]])  # k = 1..4: the second item helps
>>> chosen_levels(errors, (1, 2, 3, 4), threshold=0.005).tolist()
[2]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from demixgan.inference.solver import LatentFit
from demixgan.models.operators import mix

#: Thresholds ``choose_threshold`` tries (per-pixel MSE drop of one more item).
THRESHOLDS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02)


@dataclass(frozen=True)
class LevelFits:
    """The fits of one set of images at every tried level, and their per-image errors.

    A family whose generator form needs no level (the relaxed lines: an intensity per row and
    column) is fitted once, the same fit standing at every level, and ``counted`` [N] holds
    the items that fit draws: its own estimate of each image's level.
    """

    levels: tuple[int, ...]
    fits: dict[int, LatentFit]
    counted: torch.Tensor | None = None

    @property
    def errors(self) -> torch.Tensor:
        """[N, len(levels)] mean squared residual of each image's fit at each level."""
        return torch.stack([self.fits[k].measurement_error for k in self.levels], dim=1)

    def select(self, threshold: float) -> tuple[torch.Tensor, LatentFit]:
        """Each image's chosen level [N] and the fit at that level, image by image."""
        if self.counted is not None:
            return self.counted, self.fits[self.levels[0]]
        levels = chosen_levels(self.errors, self.levels, threshold)
        first = self.fits[self.levels[0]]
        components = torch.zeros_like(first.components)
        errors = torch.zeros_like(first.measurement_error)
        for k in self.levels:
            take = levels == k
            components[take] = self.fits[k].components[take]
            errors[take] = self.fits[k].measurement_error[take]
        iterations = max(fit.iterations for fit in self.fits.values())
        return levels, LatentFit({}, components, errors, iterations)


@dataclass(frozen=True)
class PrunedItems:
    """One fit at the largest tried level whose surplus stroke items each image then drops.

    Per image, the item whose removal raises the residual least is dropped, one at a time,
    while that rise is below the threshold and more items remain than the smallest tried
    level. A surplus item lies on another item or on strokes that the signal's generator draws
    as well, so dropping it costs next to nothing; a real one leaves its stroke unexplained.
    """

    levels: tuple[int, ...]
    fit: LatentFit  # at max(levels)
    items: torch.Tensor  # [N, max(levels), C, H, W]: each fitted item alone
    index: int  # the corruption's place among the fit's components
    observations: torch.Tensor
    operator: nn.Module

    @property
    def fits(self) -> dict[int, LatentFit]:
        return {max(self.levels): self.fit}

    def select(self, threshold: float) -> tuple[torch.Tensor, LatentFit]:
        """Each image's level [N] (the items it keeps) and the fit with only those items."""
        n, count = self.items.shape[:2]
        kept = torch.ones(n, count, dtype=torch.bool)
        error = self._error(kept)
        for _ in range(count - min(self.levels)):
            without = torch.stack([self._error(kept & ~self._only(j)) for j in range(count)], 1)
            cost, drop = (without - error[:, None]).masked_fill(~kept, torch.inf).min(1)
            dropping = cost < threshold
            if not dropping.any():
                break
            kept[dropping, drop[dropping]] = False
            error = self._error(kept)
        fit = LatentFit({}, self._components(kept), error, self.fit.iterations)
        return kept.sum(1), fit

    def _only(self, item: int) -> torch.Tensor:
        return torch.arange(self.items.shape[1]) == item

    def _components(self, kept: torch.Tensor) -> torch.Tensor:
        components = self.fit.components.clone()
        components[:, self.index] = (self.items * kept[:, :, None, None, None]).amax(1)
        return components

    def _error(self, kept: torch.Tensor) -> torch.Tensor:
        residual = mix(self._components(kept), self.operator) - self.observations
        return residual.pow(2).flatten(1).mean(1)


def chosen_levels(errors: torch.Tensor, levels: Sequence[int], threshold: float) -> torch.Tensor:
    """The smallest level of ``levels`` after which one more item lowers the error [N, L] by
    less than ``threshold``; the largest where every step helps more."""
    gains = errors[:, :-1] - errors[:, 1:]  # [N, L - 1]: what the next item explains
    small = gains < threshold
    last = torch.full((len(errors),), len(levels) - 1, dtype=torch.long)
    first = torch.where(small.any(1), small.float().argmax(1), last)
    return torch.tensor(levels)[first]


def choose_threshold(
    validation: Sequence[tuple[LevelFits | PrunedItems, int]],
    thresholds: Sequence[float] = THRESHOLDS,
) -> tuple[float, dict[float, float]]:
    """The threshold that recovers the true level of the most validation images (fits of
    images whose true level is the pair's int), and each threshold's share recovered."""
    shares = {}
    for threshold in thresholds:
        chosen = [(fits.select(threshold)[0], level) for fits, level in validation]
        right = sum((levels == level).sum().item() for levels, level in chosen)
        shares[threshold] = right / sum(len(levels) for levels, _ in chosen)
    return max(shares, key=shares.get), shares
