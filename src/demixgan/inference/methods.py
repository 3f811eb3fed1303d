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
#: The rows of the peers (inference/choice.PEERS), with the same network and budget.
PEER_ROWS = {
    "mixit": "MixIT peer (outputs grouped without truth)",
    "remixit": "RemixIT peer (taught by MixIT, no GAN)",
    "supervised": "supervised separator (clean parts): upper bound",
}
#: The MixIT peer's outputs grouped by each mixture's truth, as the MixIT papers report it.
MIXIT_ORACLE_ROW = "MixIT peer, oracle grouping (sees the truth)"
#: The separator's parts as the start of a short latent fit.
REFINE_ROW = "demixing-GAN, separator + fit"
#: The best pixel-value rule, fitted with the truth of validation mixtures: a floor, not a method.
PIXEL_RULE_ROW = "pixel-value rule (fitted with truth)"
#: Bins of the pixel-value rule's table over the mixtures' range.
PIXEL_RULE_BINS = 256
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
class OracleGrouping:
    """A MixIT separator's outputs added into parts by each mixture's best grouping against
    ``truths`` (the parts of exactly the observations it is given): a reading that sees the
    truth, so it bounds any grouping rule and is labelled so."""

    trained: TrainedModel
    separator: Separator
    truths: torch.Tensor  # [N, K, C, H, W]
    name: str = MIXIT_ORACLE_ROW

    @property
    def part_names(self) -> Sequence[str]:
        return self.trained.component_names

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        from demixgan.inference.mixit import oracle_groups

        if len(observations) != len(self.truths):
            raise ValueError("the oracle grouping needs the truth of every observation")
        parts = oracle_groups(self.separator.outputs(observations), self.truths)
        return self.trained.make_consistent(parts, observations)


def peer_methods(
    trained: TrainedModel, peers: dict[str, Separator], truths: torch.Tensor | None = None
) -> list[SeparationMethod]:
    """The rows of a run's peers (``PEER_ROWS`` order); with ``truths``, the MixIT peer's
    oracle grouping beside its own."""
    methods: list[SeparationMethod] = []
    for kind, row in PEER_ROWS.items():
        if kind in peers:
            methods.append(SeparatorNetwork(trained, peers[kind], name=row))
            if kind == "mixit" and truths is not None:
                methods.append(OracleGrouping(trained, peers[kind], truths))
    return methods


def with_peers(
    methods: Sequence[SeparationMethod], peers: Sequence[SeparationMethod]
) -> list[SeparationMethod]:
    """``methods`` with the ``peers`` rows before the floors (pixel rule, ICA, mixture, split)."""
    floors = (PixelRule, Ica, Mixture, Split)
    at = next((i for i, m in enumerate(methods) if isinstance(m, floors)), len(methods))
    return [*methods[:at], *peers, *methods[at:]]


@dataclass
class Refine:
    """The separator's parts as the latent fit's start, then a short fit (``refine``)."""

    trained: TrainedModel
    separator: Separator
    options: FitOptions
    name: str = REFINE_ROW

    @property
    def part_names(self) -> Sequence[str]:
        return self.trained.component_names

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        return self.trained.refine(observations, self.separator, self.options)


@dataclass
class PixelRule:
    """Each part as a function of the mixture's value at the same pixel and channel.

    The table holds every part's mean over validation mixtures whose pixel fell in each of
    ``PIXEL_RULE_BINS`` value bins: the best such rule in squared error, up to binning. It sees
    the truth, so it is a floor a method must clear (in digit + sines the digits are exactly 1
    and the curves never are, and it separates all but exactly, up to its binning), not
    something a user could run.
    """

    table: torch.Tensor  # [K, C, bins]: each part's mean value per mixture-value bin
    low: float
    high: float
    part_names: Sequence[str]
    name: str = PIXEL_RULE_ROW

    @classmethod
    def fit(
        cls, mixtures: torch.Tensor, parts: torch.Tensor, part_names: Sequence[str]
    ) -> PixelRule:
        """The table of mixtures [N, C, H, W] and their true parts [N, K, C, H, W]."""
        low, high = mixtures.min().item(), mixtures.max().item()
        channels, count = mixtures.shape[1], parts.shape[1]
        bins = _bins(mixtures, low, high).transpose(0, 1).reshape(channels, -1)  # [C, NHW]
        offsets = torch.arange(channels)[:, None] * PIXEL_RULE_BINS
        flat = (bins + offsets).flatten()
        sizes = torch.bincount(flat, minlength=channels * PIXEL_RULE_BINS).double()
        table = torch.empty(count, channels * PIXEL_RULE_BINS, dtype=torch.float64)
        for k in range(count):
            values = parts[:, k].transpose(0, 1).reshape(-1).double()
            table[k] = torch.bincount(flat, values, minlength=channels * PIXEL_RULE_BINS)
        # An empty bin takes the split of its value: no evidence, no preference.
        centres = torch.linspace(low, high, PIXEL_RULE_BINS, dtype=torch.float64)
        empty = sizes == 0
        table = torch.where(empty, centres.repeat(channels) / count, table / sizes.clamp(min=1))
        return cls(table.float().view(count, channels, PIXEL_RULE_BINS), low, high, part_names)

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        bins = _bins(observations, self.low, self.high)  # [N, C, H, W]
        channels = torch.arange(observations.shape[1]).view(1, -1, 1, 1)
        return self.table[:, channels, bins].movedim(0, 1)


def _bins(values: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """The pixel-value rule's bin of each value (values outside [low, high] take the end bins)."""
    scaled = (values - low) / max(high - low, 1e-12) * (PIXEL_RULE_BINS - 1)
    return scaled.round().clamp(0, PIXEL_RULE_BINS - 1).long()


@dataclass
class Ica:
    """FastICA on each mixture's patches (evaluation/baselines.py); ``shares_only`` leaves out
    the rest of the mixture, which the full reading splits equally among the sources."""

    parts: int
    seed: int = 0
    shares_only: bool = False
    #: Where the full reading takes its shares from (the shares row, run once for both).
    shares: SeparationMethod | None = None

    @property
    def name(self) -> str:
        return ICA_SHARES_ROW if self.shares_only else "ICA"

    @property
    def part_names(self) -> Sequence[str]:
        return [f"ICA {k + 1}" for k in range(self.parts)]

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        from demixgan.evaluation.baselines import ica_shares, with_rest_split

        if self.shares is not None:
            shares = self.shares.separate(observations)
        else:
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
    pixel_rule: PixelRule | None = None,
    refine_options: FitOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[SeparationMethod]:
    """The methods of ``--methods`` for a trained model, in table order.

    ``fit`` gives two rows from one fit (its parts made consistent, and G(z) as fitted, where
    the two differ); ``ica`` two readings (with the rest split, and the shares alone);
    ``refine`` fits from the separator's parts with ``refine_options`` (default ``options``);
    ``pixel-rule`` is the table fitted beforehand on validation mixtures with their truth.
    """
    unknown = [name for name in names if name not in METHOD_NAMES]
    if unknown or not names:
        raise DemixganError(
            f"Unknown separation methods {', '.join(unknown) or '(none given)'}: --methods takes "
            f"a comma-separated list of {', '.join(METHOD_NAMES)}, e.g. fit,ica,split."
        )
    needing = [name for name in ("separator", "refine") if name in names]
    if needing and separator is None:
        raise DemixganError(
            f"--methods names {' and '.join(needing)}, which needs a separator, but none was "
            "given: add --separator DIR (written by 'demixgan separator')."
        )
    if "pixel-rule" in names and pixel_rule is None:
        raise DemixganError(
            "The pixel-value rule is fitted on validation mixtures with their truth, which only "
            "a built-in recipe has: leave pixel-rule out of --methods for this run."
        )
    parts = len(trained.model.learned)
    methods: list[SeparationMethod] = []
    for name in (n for n in METHOD_NAMES if n in names):
        if name == "fit":
            generated = Remembered(LatentFit(trained, options, consistent=False, progress=progress))
            methods.append(ConsistentParts(generated, trained))
            if trained.projects_onto_mixture:  # else the two rows would be the same
                methods.append(generated)
        elif name == "refine":
            methods.append(Refine(trained, separator, refine_options or options))
        elif name == "separator":
            methods.append(SeparatorNetwork(trained, separator))
        elif name == "pixel-rule":
            methods.append(pixel_rule)
        elif name == "ica":
            shares = Remembered(Ica(parts, options.seed, shares_only=True))
            methods += [Ica(parts, options.seed, shares=shares), shares]
        elif name == "mixture":
            methods.append(Mixture(parts))
        else:
            methods.append(Split(parts))
    return methods
