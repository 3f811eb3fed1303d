"""One way to separate: every method is ``method.separate(observations) -> parts``.

A separation method takes observations [N, C, H, W] and returns parts [N, K, C, H, W] (K the
parts it finds, in its own order; evaluation matches them to the truth). The latent fit, a
separator network, ICA, the trivial split and the mixture itself all follow it, so an
evaluation is a list of methods (``demixgan evaluate --methods fit,separator,ica,split``) and a
new method is one small class here with a ``name`` (its row) and ``separate``.

>>> split = Split(3)
>>> split.name, tuple(split.separate(torch.ones(2, 1, 4, 4)).shape)
('split y/3', (2, 3, 1, 4, 4))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from demixgan.errors import DemixganError
from demixgan.inference.amortized import Separator
from demixgan.inference.api import TrainedModel
from demixgan.inference.options import METHOD_NAMES, FitOptions

#: The rows of the latent fit: its parts made consistent with the mixture, and G(z) as fitted.
FIT_ROW = "demixing-GAN"
GENERATED_ROW = "demixing-GAN, G(z) only"
#: The separator network trained on the model's draws and remixed training mixtures.
SEPARATOR_ROW = "demixing-GAN, amortized separator"
#: ICA's sources alone, not summing to the mixture: the reading nearest the paper's ICA rows.
ICA_SHARES_ROW = "ICA, shares only"


class SeparationMethod(Protocol):
    """Observations [N, C, H, W] in, parts [N, K, C, H, W] out; ``name`` labels its row."""

    name: str
    #: Names of its parts, in output order (for the matching a table reports).
    part_names: Sequence[str]

    def separate(self, observations: torch.Tensor) -> torch.Tensor: ...


@dataclass
class LatentFit:
    """The latent fit of a trained model (paper eq. 4), projected onto the mixture where the
    model says y is the sum of its parts; ``consistent=False`` keeps G(z) as fitted."""

    trained: TrainedModel
    options: FitOptions
    consistent: bool = True
    progress: Callable[[int], None] | None = None

    @property
    def name(self) -> str:
        return FIT_ROW if self.consistent else GENERATED_ROW

    @property
    def part_names(self) -> Sequence[str]:
        return self.trained.component_names

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        return self.trained.demix(
            observations, self.options, progress=self.progress, consistent=self.consistent
        )


@dataclass
class ConsistentParts:
    """Another method's parts projected onto the mixture (the fit's two rows share one fit)."""

    inner: SeparationMethod
    trained: TrainedModel
    name: str = FIT_ROW

    @property
    def part_names(self) -> Sequence[str]:
        return self.inner.part_names

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        return self.trained.make_consistent(self.inner.separate(observations), observations)


@dataclass
class SeparatorNetwork:
    """A trained separator's parts in one pass (no latent fit), consistent with the mixture."""

    trained: TrainedModel
    separator: Separator
    name: str = SEPARATOR_ROW

    @property
    def part_names(self) -> Sequence[str]:
        return self.trained.component_names

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        return self.trained.separate(observations, self.separator)


@dataclass
class Ica:
    """FastICA on each mixture's patches (evaluation/baselines.py); ``shares_only`` leaves out
    the rest of the mixture, which the full reading splits equally among the sources."""

    parts: int
    seed: int = 0
    shares_only: bool = False

    @property
    def name(self) -> str:
        return ICA_SHARES_ROW if self.shares_only else "ICA"

    @property
    def part_names(self) -> Sequence[str]:
        return [f"ICA {k + 1}" for k in range(self.parts)]

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        from demixgan.evaluation.baselines import ica_shares, with_rest_split

        shares = ica_shares(observations, n_components=self.parts, seed=self.seed)
        return shares if self.shares_only else with_rest_split(shares, observations)


@dataclass
class Split:
    """The trivial split y / K: the bar every method must clear."""

    parts: int
    part_names: Sequence[str] = field(init=False)

    def __post_init__(self) -> None:
        self.part_names = [f"y/{self.parts}"] * self.parts

    @property
    def name(self) -> str:
        return f"split y/{self.parts}"

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        return Mixture(self.parts).separate(observations) / self.parts


@dataclass
class Mixture:
    """The mixture itself as every part: how far the input is from each truth."""

    parts: int
    name: str = "input (mixture)"
    part_names: Sequence[str] = field(init=False)

    def __post_init__(self) -> None:
        self.part_names = ["mixture"] * self.parts

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        return observations.unsqueeze(1).expand(-1, self.parts, *observations.shape[1:])


class Remembered:
    """A method whose last result is kept, so two readings of one run cost one run."""

    def __init__(self, inner: SeparationMethod) -> None:
        self.inner, self.name, self.part_names = inner, inner.name, inner.part_names
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        if self._last is None or self._last[0] is not observations:
            self._last = (observations, self.inner.separate(observations))
        return self._last[1]


def build_methods(
    names: Sequence[str],
    trained: TrainedModel,
    options: FitOptions,
    *,
    separator: Separator | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[SeparationMethod]:
    """The methods of ``--methods`` for a trained model, in table order.

    ``fit`` gives two rows from one fit (its parts made consistent, and G(z) as fitted, where
    the two differ); ``ica`` two readings (with the rest split, and the shares alone).
    """
    unknown = [name for name in names if name not in METHOD_NAMES]
    if unknown or not names:
        raise DemixganError(
            f"Unknown separation methods {', '.join(unknown) or '(none given)'}: --methods takes "
            f"a comma-separated list of {', '.join(METHOD_NAMES)}, e.g. fit,ica,split."
        )
    if "separator" in names and separator is None:
        raise DemixganError(
            "--methods names the separator, but none was given: add --separator DIR (written "
            "by 'demixgan separator')."
        )
    parts = len(trained.model.learned)
    methods: list[SeparationMethod] = []
    for name in (n for n in METHOD_NAMES if n in names):
        if name == "fit":
            generated = Remembered(LatentFit(trained, options, consistent=False, progress=progress))
            methods.append(ConsistentParts(generated, trained))
            if trained.projects_onto_mixture:  # else the two rows would be the same
                methods.append(generated)
        elif name == "separator":
            methods.append(SeparatorNetwork(trained, separator))
        elif name == "ica":
            methods += [Ica(parts, options.seed), Ica(parts, options.seed, shares_only=True)]
        elif name == "mixture":
            methods.append(Mixture(parts))
        else:
            methods.append(Split(parts))
    return methods
