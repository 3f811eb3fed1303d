"""Amortized inference: a separator trained on the model's own draws separates fresh ones."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from demixgan.data.families import get_family
from demixgan.errors import DemixganError
from demixgan.inference.amortized import (
    Separator,
    assignments,
    exchangeable_groups,
    matched_squared_error,
)
from demixgan.inference.options import SeparatorOptions
from demixgan.models.operators import GaussianOperator
from demixgan.models.superposition_model import (
    KnownComponent,
    LearnedComponent,
    SuperpositionModel,
)
from demixgan.spec.image import MNIST_IMAGE
from demixgan.training.separator import train_separator


class BlobGenerator(nn.Module):
    """A Gaussian blob whose centre is the latent: a generator with a known, simple range."""

    latent_dim = 2

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        grid = torch.arange(28.0)
        centre = 14 + 8 * z
        rows = (grid[None, :] - centre[:, :1]).pow(2)
        cols = (grid[None, :] - centre[:, 1:]).pow(2)
        return torch.exp(-(rows[:, :, None] + cols[:, None, :]) / 18).unsqueeze(1)


#: A budget of seconds that is enough for blobs and curves.
QUICK = SeparatorOptions(steps=150, width=8, batch_size=32, lr=1e-2, remix_steps=0)


def blob_and_curves() -> SuperpositionModel:
    return SuperpositionModel(
        [LearnedComponent("blob", BlobGenerator()), KnownComponent("sines", "sines", level=1)]
    )


def fresh_draws(model: SuperpositionModel, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return model.components(model.sample_latents(n, g), model.sample_known(n, g))


@pytest.fixture(scope="module")
def drawn() -> Separator:
    """QUICK's separator of blobs and curves, trained once for the tests that start from it."""
    return train_separator(blob_and_curves(), QUICK)


@pytest.fixture(scope="module")
def compressive() -> tuple[GaussianOperator, Separator]:
    """100 Gaussian measurements of blobs and curves, and QUICK's separator through them."""
    operator = GaussianOperator(100, MNIST_IMAGE, seed=0)
    return operator, train_separator(blob_and_curves(), QUICK, operator=operator)


def test_separator_beats_the_split_on_fresh_draws(drawn: Separator) -> None:
    model, separator = blob_and_curves(), drawn
    parts = fresh_draws(model, 64, seed=123)
    estimates = separator.separate(parts.sum(1))
    assert estimates.shape == parts.shape
    split = (parts.sum(1, keepdim=True) / 2 - parts).pow(2).mean()
    error = (estimates - parts).pow(2).mean()
    assert error < 0.3 * split, (error, split)


def test_a_bfloat16_separator_separates_as_well_as_a_float32_one() -> None:
    """Steps in bfloat16 (autocast; weights and losses float32) learn as the float32 steps do:
    the same budget leaves about the same error on fresh draws, separated in float32. Half of
    QUICK's steps: a bfloat16 step is 4-5x a float32 one on a CPU that emulates it, and the two
    errors already agree within 0.1% there."""
    model = blob_and_curves()
    parts = fresh_draws(model, 64, seed=123)
    half = replace(QUICK, steps=QUICK.steps // 2)
    errors = {
        precision: (
            train_separator(model, replace(half, precision=precision)).separate(parts.sum(1))
            - parts
        )
        .pow(2)
        .mean()
        for precision in ("float32", "bfloat16")
    }
    assert errors["bfloat16"] < 1.25 * errors["float32"], errors
    assert errors["bfloat16"] != errors["float32"]  # the steps did run in bfloat16


def test_separator_learns_through_a_gaussian_operator(compressive) -> None:
    """Compressive observations: the network lifts y = A(sum) back to images itself."""
    model, (operator, separator) = blob_and_curves(), compressive
    parts = fresh_draws(model, 64, seed=7)
    blob = separator.separate(operator(parts.sum(1)))[:, 0]
    mean_guess = fresh_draws(model, 2048, seed=8)[:, 0].mean(0)  # the best observation-blind guess
    assert (blob - parts[:, 0]).pow(2).mean() < 0.5 * (mean_guess - parts[:, 0]).pow(2).mean()


def disks_and_curves(n: int, seed: int) -> torch.Tensor:
    """ "Real" parts [n, 2, 1, 28, 28] the model does not draw: hard-edged disks, not blobs."""
    g = torch.Generator().manual_seed(seed)
    centre = 14 + 8 * (torch.rand(n, 2, generator=g) * 2 - 1)
    grid = torch.arange(28.0)
    rows = (grid[None, :] - centre[:, :1]).pow(2)
    cols = (grid[None, :] - centre[:, 1:]).pow(2)
    disks = ((rows[:, :, None] + cols[:, None, :]) < 16).float().unsqueeze(1)
    return torch.stack([disks, get_family("sines").sample(n, 1, g)], dim=1)


def test_remixing_real_mixtures_closes_the_gap_to_the_data(drawn: Separator) -> None:
    """Trained on blobs, the separator meets disks; remixing the real mixtures teaches it disks.

    The remixing continues the draws-only separator (``start``), which stays as it was.
    """
    training = disks_and_curves(2000, seed=0).sum(1)
    test = disks_and_curves(128, seed=1)
    before = drawn.separate(test.sum(1))
    options = replace(QUICK, remix_steps=300, remix_lr=1e-3, teacher_every=50)
    remixed = train_separator(
        blob_and_curves(), options, mixtures=training, consistent=True, start=drawn
    )
    error_before = (before - test).pow(2).mean()
    error_after = (remixed.separate(test.sum(1)) - test).pow(2).mean()
    assert error_after < 0.5 * error_before, (error_after, error_before)
    assert torch.equal(drawn.separate(test.sum(1)), before)


def test_a_known_corruption_is_drawn_at_every_level_up_to_max_level() -> None:
    model = SuperpositionModel(
        [LearnedComponent("blob", BlobGenerator()), KnownComponent("lines", "lines", level=1)]
    )
    g = torch.Generator().manual_seed(0)
    lines = model.sample_known(400, g, max_level=4)["lines"][:, 0]
    counted = (lines.amin(2) == 1).sum(1) + (lines.amin(1) == 1).sum(1)  # full rows + columns
    assert set(counted.tolist()) == {1, 2, 3, 4} and counted.float().mean() > 2.2
    own = model.sample_known(50, g)["lines"][:, 0]
    assert ((own.amin(2) == 1).sum(1) + (own.amin(1) == 1).sum(1)).eq(1).all()


def test_a_denoiser_drawn_at_every_level_splits_more_curves_off(drawn: Separator) -> None:
    """Trained at the model's level 1, a separator leaves curves of level 4 in the signal;
    drawn at levels 1..4 it is never told the level and removes them."""
    level_4 = SuperpositionModel(
        [LearnedComponent("blob", BlobGenerator()), KnownComponent("sines", "sines", level=4)]
    )
    parts = fresh_draws(level_4, 200, seed=7)
    mixtures = parts.sum(1)

    def blob_error(separator: Separator) -> float:
        return (separator.separate(mixtures)[:, 0] - parts[:, 0]).pow(2).mean().item()

    every_level = train_separator(blob_and_curves(), replace(QUICK, max_level=4))
    own, every = blob_error(drawn), blob_error(every_level)
    assert every < 0.7 * own, (every, own)


def test_same_seed_same_separator() -> None:
    model = blob_and_curves()
    options = replace(QUICK, steps=5, batch_size=8, remix_steps=5, teacher_every=2)
    mixtures = fresh_draws(model, 16, seed=2).sum(1)
    first, second = (
        train_separator(model, options, mixtures=mixtures, consistent=True) for _ in range(2)
    )
    observations = fresh_draws(model, 4, seed=1).sum(1)
    assert torch.equal(first.separate(observations), second.separate(observations))


def test_shared_generators_are_exchangeable() -> None:
    shared = BlobGenerator()
    model = SuperpositionModel(
        [
            LearnedComponent("a", shared),
            LearnedComponent("b", shared),
            KnownComponent("sines", "sines", level=1),
        ]
    )
    assert exchangeable_groups(model) == [[0, 1], [2]]
    assert exchangeable_groups(blob_and_curves()) == [[0], [1]]
    assert assignments([[0], [1]]) == [[0, 1]]


def test_matched_error_ignores_the_order_within_a_group() -> None:
    parts = torch.rand(3, 2, 1, 4, 4)
    swapped = parts.flip(1)
    orders = assignments([[0, 1]])
    assert matched_squared_error(swapped, parts, orders).abs().max() == 0
    assert matched_squared_error(swapped, parts, [[0, 1]]).min() > 0


def test_bad_options_are_one_clear_error() -> None:
    bad = r"steps must be an integer >= 1.*lr must be a finite number > 0"
    with pytest.raises(DemixganError, match=bad):
        SeparatorOptions(steps=0, lr=0)


class ExactSplit(nn.Module):
    """A teacher that splits its own training mixtures exactly (it looks each one up)."""

    def __init__(self, parts: torch.Tensor) -> None:
        super().__init__()
        self.parts = parts
        self.mixtures = parts.sum(1).flatten(1)

    def forward(self, mixtures: torch.Tensor) -> torch.Tensor:
        return self.parts[torch.cdist(mixtures.flatten(1), self.mixtures).argmin(1)]


def test_a_fixed_teacher_of_whole_mixtures_teaches_a_compressive_separator(compressive) -> None:
    """The training mixtures are stored whole even where test observations are A(y): a
    teacher that splits whole mixtures teaches better than the compressive network itself."""
    model, (operator, drawn) = blob_and_curves(), compressive
    parts = disks_and_curves(2000, seed=0)
    test = disks_and_curves(128, seed=1)
    options = replace(QUICK, remix_steps=150, remix_lr=1e-3, teacher_every=50)
    teachers = (None, Separator(ExactSplit(parts), model.names))
    own, taught = (
        train_separator(
            model, options, operator=operator, mixtures=parts.sum(1), start=drawn, teacher=t
        )
        for t in teachers
    )
    errors = [(s.separate(operator(test.sum(1))) - test).pow(2).mean() for s in (own, taught)]
    assert errors[1] < 0.8 * errors[0], errors


def test_a_teacher_of_other_components_is_refused() -> None:
    teacher = train_separator(blob_and_curves(), replace(QUICK, steps=1))
    other = SuperpositionModel(
        [LearnedComponent("disk", BlobGenerator()), KnownComponent("sines", "sines", level=1)]
    )
    with pytest.raises(DemixganError, match="splits into blob, sines"):
        train_separator(other, QUICK, mixtures=torch.zeros(4, 1, 28, 28), teacher=teacher)
