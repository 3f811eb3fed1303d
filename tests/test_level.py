"""The corruption level chosen per image: model selection on the fit, threshold on validation."""

from __future__ import annotations

import torch

from demixgan.data.families import get_family, sines_image
from demixgan.data.sources import load_images
from demixgan.inference.api import load
from demixgan.inference.level import LevelFits, PrunedItems, choose_threshold, chosen_levels
from demixgan.inference.options import FitOptions
from demixgan.inference.solver import LatentFit
from demixgan.models.operators import ClipOperator, mix


def fits_with_errors(errors: torch.Tensor, levels: tuple[int, ...]) -> LevelFits:
    """LevelFits whose per-image errors at each level are the columns of ``errors``."""
    n = len(errors)
    return LevelFits(
        levels,
        {
            k: LatentFit({}, torch.full((n, 2, 1, 2, 2), float(k)), errors[:, i], 1)
            for i, k in enumerate(levels)
        },
    )


def test_each_image_takes_the_level_after_which_one_more_item_stops_helping() -> None:
    errors = torch.tensor(
        [
            [0.05, 0.049, 0.048],  # a second item explains almost nothing: level 1
            [0.08, 0.04, 0.039],  # the second item helps, the third does not: level 2
            [0.09, 0.06, 0.03],  # every item helps: the largest level tried
        ]
    )
    assert chosen_levels(errors, (1, 2, 3), threshold=0.005).tolist() == [1, 2, 3]
    levels, fit = fits_with_errors(errors, (1, 2, 3)).select(0.005)
    assert levels.tolist() == [1, 2, 3]
    assert fit.components[:, 0, 0, 0, 0].tolist() == [1.0, 2.0, 3.0]  # each image's own fit


def test_the_threshold_is_the_one_that_recovers_most_validation_levels() -> None:
    one = fits_with_errors(torch.tensor([[0.05, 0.045, 0.044]] * 4), (1, 2, 3))  # true level 1
    two = fits_with_errors(torch.tensor([[0.08, 0.05, 0.049]] * 4), (1, 2, 3))  # true level 2
    threshold, shares = choose_threshold([(one, 1), (two, 2)], (0.001, 0.01, 0.05))
    assert threshold == 0.01 and shares[0.01] == 1.0
    assert shares[0.001] == 0.0 and shares[0.05] == 0.5


def test_a_sines_denoiser_fits_the_largest_level_once_and_picks_one_per_image(tiny_runs) -> None:
    trained = load(tiny_runs["denoise"])
    digits = load_images("mnist-embedded", "test", binarize=True).images[:4]
    curves = get_family("sines").sample(4, 2, torch.Generator().manual_seed(0))
    corrupted = mix(torch.stack((digits, curves), 1))
    options = FitOptions(iterations=5, restarts=1, seed=0)
    by_level = trained.fit_levels(corrupted, (1, 2, 3), options)
    assert isinstance(by_level, PrunedItems) and list(by_level.fits) == [3]
    assert by_level.items.shape == (4, 3, 1, 28, 28)
    levels, fit = by_level.select(0.002)
    assert set(levels.tolist()) <= {1, 2, 3} and fit.components.shape == (4, 2, 1, 28, 28)


def pruned(items: torch.Tensor, signal: torch.Tensor, observed: torch.Tensor) -> PrunedItems:
    """PrunedItems of one image whose fit drew ``signal`` beside ``items`` [L, 1, H, W]."""
    components = torch.stack((signal, items.amax(0)))[None]
    fit = LatentFit({}, components, torch.zeros(1), 1)
    levels = tuple(range(1, len(items) + 1))
    return PrunedItems(levels, fit, items[None], 1, observed[None], ClipOperator())


def test_surplus_curves_are_dropped_and_real_ones_kept() -> None:
    """A fit at level 3 of an image with two curves: the third item lies on the first, or
    on the digit's own strokes; dropping it costs nothing, dropping a real curve does."""
    truth = torch.tensor([[[0.2, 0.5, 0.3, 0.1], [0.7, 0.2, 0.8, 0.6]]])
    first, second = sines_image(truth[:, :1], 28, 28)[0], sines_image(truth[:, 1:], 28, 28)[0]
    digit = torch.zeros(1, 28, 28)
    digit[:, 8:20, 12:15] = 1.0
    observed = (digit + torch.maximum(first, second)).clamp(0, 1)
    on_digit = torch.zeros(1, 28, 28)
    on_digit[:, 9:19, 13] = 1.0
    for surplus in (first, on_digit):
        by_items = pruned(torch.stack((first, second, surplus)), digit, observed)
        levels, fit = by_items.select(0.001)
        assert levels.tolist() == [2]
        assert torch.allclose(fit.components[0, 1], torch.maximum(first, second))
        assert fit.measurement_error.item() < 1e-6
        assert by_items.select(1.0)[0].tolist() == [1]  # the smallest level tried stays


def test_the_relaxed_lines_count_the_lines_they_draw() -> None:
    """Lines need no level: their fit lights any rows and columns, and counts them."""
    from demixgan.models.family_generators import family_generator

    lines = family_generator("lines", 1)
    z = -torch.ones(2, lines.latent_dim)
    z[0, 3] = z[0, 30] = 1.0  # row 3 and column 2 lit
    z[1, 10] = -0.2  # a faint row (intensity 0.4): not a line
    assert lines.items(z).tolist() == [2, 0]
