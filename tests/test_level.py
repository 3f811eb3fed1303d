"""The corruption level chosen per image: model selection on the fit, threshold on validation."""

from __future__ import annotations

import torch

from demixgan.data.families import get_family
from demixgan.data.sources import load_images
from demixgan.inference.api import load
from demixgan.inference.level import LevelFits, choose_threshold, chosen_levels
from demixgan.inference.options import FitOptions
from demixgan.inference.solver import LatentFit
from demixgan.models.operators import mix


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


def test_a_denoiser_fits_every_tried_level_and_picks_one_per_image(tiny_runs) -> None:
    trained = load(tiny_runs["denoise"])
    digits = load_images("mnist-embedded", "test", binarize=True).images[:4]
    curves = get_family("sines").sample(4, 2, torch.Generator().manual_seed(0))
    corrupted = mix(torch.stack((digits, curves), 1))
    options = FitOptions(iterations=5, restarts=1, seed=0)
    by_level = trained.fit_levels(corrupted, (1, 2, 3), options)
    assert by_level.errors.shape == (4, 3) and by_level.counted is None
    levels, fit = by_level.select(0.002)
    assert set(levels.tolist()) <= {1, 2, 3} and fit.components.shape[0] == 4


def test_the_relaxed_lines_count_the_lines_they_draw() -> None:
    """Lines need no level: their fit lights any rows and columns, and counts them."""
    from demixgan.models.family_generators import family_generator

    lines = family_generator("lines", 1)
    z = -torch.ones(2, lines.latent_dim)
    z[0, 3] = z[0, 30] = 1.0  # row 3 and column 2 lit
    z[1, 10] = -0.2  # a faint row (intensity 0.4): not a line
    assert lines.items(z).tolist() == [2, 0]
